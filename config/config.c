/* Config loader: defaults from the key table, then the INI file (inih), then -o options.
 * Each value is checked against its key's type here, so no other module parses text. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum key_type { KEY_STR, KEY_INT, KEY_ENUM, KEY_LIST };

struct key {
    const char *section, *name, *def, *help;
    enum key_type type;
    size_t offset;
    long min, max;
    int auto_zero;            /* INT: "auto" is accepted and stored as 0 */
    const char *const *names; /* ENUM: the values, NULL-terminated */
    const char *placeholder;  /* STR: what --help shows as the value */
};

#define RANGE(lo, hi) .min = (lo), .max = (hi),
#define RANGE_AUTO(lo, hi) RANGE(lo, hi).auto_zero = 1,
#define ENUM_NAME(c, name) name,
#define VALID_STR(valid) .placeholder = valid,
#define VALID_INT(...) __VA_ARGS__
#define VALID_LIST(...) __VA_ARGS__
#define VALID_ENUM(valid) .names = (const char *const[]){valid(ENUM_NAME) NULL},

static const struct key keys[] = {
#define CONFIG_ENTRY(sec, nm, ty, d, valid, h)                                                     \
    {.section = #sec,                                                                              \
     .name = #nm,                                                                                  \
     .def = d,                                                                                     \
     .help = h,                                                                                    \
     .type = KEY_##ty,                                                                             \
     .offset = offsetof(struct config, nm),                                                        \
     VALID_##ty(valid)},
    CONFIG_KEYS(CONFIG_ENTRY)
#undef CONFIG_ENTRY
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(CONFIG_LEVEL_ERROR == (int)LOG_LEVEL_ERROR &&
                   CONFIG_LEVEL_DEBUG == (int)LOG_LEVEL_DEBUG,
               "[log] level names follow enum log_level");

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name) && (!section || !strcmp(keys[i].section, section)))
            return &keys[i];
    return NULL;
}

int config_has_key(const char *key)
{
    return find_key(NULL, key) != NULL;
}

/* What a key accepts, in words: "an integer from 1 to 256", "one of auto cpu nvdec". */
static void describe(const struct key *k, char *buf, size_t size)
{
    size_t n = 0;
    switch (k->type) {
    case KEY_STR:
        snprintf(buf, size, "text");
        return;
    case KEY_INT:
        snprintf(buf, size, "an integer from %ld to %ld%s", k->min, k->max,
                 k->auto_zero ? ", or auto" : "");
        return;
    case KEY_LIST:
        snprintf(buf, size, "all, or up to %d integers from %ld to %ld separated by commas",
                 CONFIG_LIST_MAX, k->min, k->max);
        return;
    case KEY_ENUM:
        n = (size_t)snprintf(buf, size, "one of");
        for (const char *const *v = k->names; *v && n < size; v++)
            n += (size_t)snprintf(buf + n, size - n, " %s", *v);
        return;
    }
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max || s[0] == '+' || s[0] == ' ')
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_list(const struct key *k, const char *s, struct config_list *out)
{
    struct config_list l = {0};
    if (!strcmp(s, "all")) {
        *out = l;
        return 0;
    }
    char buf[256];
    if (!*s || strlen(s) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    /* strtok_r would skip the empty item of "0,,1": walk the commas by hand. */
    for (char *p = buf; p; p = save) {
        char *comma = strchr(p, ',');
        save = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        long v;
        if (l.n == CONFIG_LIST_MAX || parse_long(p, k->min, k->max, &v) < 0)
            return -EINVAL;
        l.v[l.n++] = (int)v;
    }
    *out = l;
    return 0;
}

static int parse_value(const struct key *k, const char *value, void *field)
{
    switch (k->type) {
    case KEY_INT:
        if (k->auto_zero && !strcmp(value, "auto")) {
            *(long *)field = 0;
            return 0;
        }
        return parse_long(value, k->min, k->max, field);
    case KEY_ENUM:
        for (int i = 0; k->names[i]; i++) {
            if (!strcmp(value, k->names[i])) {
                *(int *)field = i;
                return 0;
            }
        }
        return -EINVAL;
    case KEY_LIST:
        return parse_list(k, value, field);
    case KEY_STR:
        break;
    }
    char *s = strdup(value);
    if (!s)
        return -ENOMEM;
    free(*(char **)field);
    *(char **)field = s;
    return 0;
}

static int set_value(struct config *cfg, const char *where, const struct key *k, const char *value)
{
    int ret = parse_value(k, value, (char *)cfg + k->offset);
    if (ret == -EINVAL) {
        char valid[256];
        describe(k, valid, sizeof(valid));
        log_error("%s%s%s=%s: expected %s", where ? where : "", where ? ": " : "", k->name, value,
                  valid);
    }
    return ret;
}

int config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        int ret = set_value(cfg, "built-in default", &keys[i], keys[i].def);
        if (ret < 0) {
            config_free(cfg);
            return ret;
        }
    }
    return 0;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type != KEY_STR)
            continue;
        char **slot = (char **)(void *)((char *)cfg + keys[i].offset);
        free(*slot);
        *slot = NULL;
    }
}

int config_set(struct config *cfg, const char *where, const char *key, const char *value)
{
    const struct key *k = find_key(NULL, key);
    if (!k) {
        log_error("%s%s%s: unknown setting", where ? where : "", where ? ": " : "", key);
        return -ENOENT;
    }
    return set_value(cfg, where, k, value);
}

struct load_state {
    struct config *cfg;
    const char *path;
    int error;
};

/* inih wants nonzero for success. */
static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
    struct load_state *st = user;
    const struct key *k = find_key(section, name);
    int ret;
    if (k) {
        ret = set_value(st->cfg, st->path, k, value);
    } else {
        log_error("%s: [%s] %s: unknown setting", st->path, section, name);
        ret = -EINVAL;
    }
    if (ret < 0) {
        st->error = ret == -ENOMEM ? ret : -EINVAL;
        return 0;
    }
    return 1;
}

int config_load(struct config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    struct load_state st = {.cfg = cfg, .path = path};
    int ret = ini_parse_file(f, on_ini_key, &st);
    fclose(f);
    if (st.error)
        return st.error;
    if (ret) {
        log_error("%s:%d: cannot parse", path, ret);
        return -EINVAL;
    }
    return 0;
}

static char *join_path(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

static char *xdg_path(const char *var, const char *home_rel, const char *leaf)
{
    const char *base = getenv(var);
    if (base && *base)
        return join_path(base, leaf);
    const char *home = getenv("HOME");
    char *dir = join_path(home && *home ? home : "/tmp", home_rel);
    if (!dir)
        return NULL;
    char *p = join_path(dir, leaf);
    free(dir);
    return p;
}

char *config_default_path(void)
{
    return xdg_path("XDG_CONFIG_HOME", ".config", "vidfs/vidfs.ini");
}

/* The cache directory as an absolute path: the daemon runs in /. */
static char *cache_dir(const char *set)
{
    char cwd[PATH_MAX];
    if (!*set)
        return xdg_path("XDG_CACHE_HOME", ".cache", "vidfs");
    if (set[0] == '/')
        return strdup(set);
    return getcwd(cwd, sizeof(cwd)) ? join_path(cwd, set) : NULL;
}

int config_finish(struct config *cfg)
{
    log_set_level((enum log_level)cfg->level);
    char *d = cache_dir(cfg->cache_dir);
    if (!d)
        return -ENOMEM;
    free(cfg->cache_dir);
    cfg->cache_dir = d;
    return 0;
}

/* The placeholder of a key's value in --help and the man page: N, auto|cpu|nvdec, ... */
static void value_name(const struct key *k, char *buf, size_t size)
{
    size_t n = 0;
    switch (k->type) {
    case KEY_STR:
        snprintf(buf, size, "%s", k->placeholder);
        return;
    case KEY_INT:
        snprintf(buf, size, "%s", k->auto_zero ? "N|auto" : "N");
        return;
    case KEY_LIST:
        snprintf(buf, size, "N,...|all");
        return;
    case KEY_ENUM:
        for (int i = 0; k->names[i] && n < size; i++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "|" : "", k->names[i]);
        return;
    }
}

/* "from 1 to 256, or auto; default: auto", the range part left out where the placeholder
 * already lists the values. */
static void value_note(const struct key *k, char *buf, size_t size)
{
    const char *def = *k->def ? k->def : "\"\"";
    if (k->type == KEY_INT || k->type == KEY_LIST)
        snprintf(buf, size, "%ld to %ld; default: %s", k->min, k->max, def);
    else
        snprintf(buf, size, "default: %s", def);
}

typedef void key_printer(FILE *f, const struct key *k, const char *val, const char *note);

/* Calls print for every key with its placeholder and note, writing section_fmt (if any)
 * with the section's name before the first key of each section. */
static void print_keys(FILE *f, const char *section_fmt, key_printer *print)
{
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        char val[96], note[96];
        if (section_fmt && strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(f, section_fmt, section);
        }
        value_name(&keys[i], val, sizeof(val));
        value_note(&keys[i], note, sizeof(note));
        print(f, &keys[i], val, note);
    }
}

static void help_key(FILE *f, const struct key *k, const char *val, const char *note)
{
    fprintf(f, "    -o %s=%s\n        %s (%s)\n", k->name, val, k->help, note);
}

void config_print_help(FILE *f)
{
    print_keys(f, NULL, help_key);
}

/* roff treats a leading '.' or '\'' as a request and '\' as an escape; help texts
 * have neither at a line start, so only backslashes and '-' need escaping. */
static void man_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

static void man_key(FILE *f, const struct key *k, const char *val, const char *note)
{
    fprintf(f, ".TP\n.BI \"\\-o %s=\" \"", k->name);
    man_text(f, val);
    fputs("\"\n", f);
    man_text(f, k->help);
    fputs(" (", f);
    man_text(f, note);
    fputs(").\n", f);
}

void config_print_man(FILE *f)
{
    print_keys(f, ".SS [%s]\n", man_key);
}

static void ini_key(FILE *f, const struct key *k, const char *val, const char *note)
{
    fprintf(f, "; %s\n; %s (%s)\n%s = %s\n", k->help, val, note, k->name, k->def);
}

void config_print_ini(FILE *f)
{
    fprintf(f, "; vidfs configuration: every key with its default.\n"
               "; Read from -o config=PATH, else ~/.config/vidfs/vidfs.ini; any key can also\n"
               "; be given on the command line as -o key=value, which wins over this file.\n");
    print_keys(f, "\n[%s]\n", ini_key);
}
