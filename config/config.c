/* Config loader: defaults from the key table, then the INI file (inih), then -o options. */
#include "config.h"
#include "log.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type { KEY_STR, KEY_INT };

struct key {
    const char *section, *name, *def, *help;
    enum key_type type;
    size_t offset;
};

static const struct key keys[] = {
#define CONFIG_ENTRY(sec, nm, ty, d, h)                                                        \
    {.section = #sec, .name = #nm, .def = d, .help = h, .type = KEY_##ty,                      \
     .offset = offsetof(struct config, nm)},
    CONFIG_KEYS(CONFIG_ENTRY)
#undef CONFIG_ENTRY
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name) && (!section || !strcmp(keys[i].section, section)))
            return &keys[i];
    return NULL;
}

static int set_value(struct config *cfg, const struct key *k, const char *value)
{
    char *field = (char *)cfg + k->offset;
    if (k->type == KEY_INT) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 0)
            return -EINVAL;
        *(long *)(void *)field = v;
        return 0;
    }
    char *s = strdup(value);
    if (!s)
        return -ENOMEM;
    char **slot = (char **)(void *)field;
    free(*slot);
    *slot = s;
    return 0;
}

int config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        int ret = set_value(cfg, &keys[i], keys[i].def);
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

int config_set(struct config *cfg, const char *key, const char *value)
{
    const struct key *k = find_key(NULL, key);
    if (!k)
        return -ENOENT;
    return set_value(cfg, k, value);
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
    int ret = k ? set_value(st->cfg, k, value) : -ENOENT;
    if (ret < 0) {
        log_error("%s: %s [%s] %s = %s", st->path,
                  ret == -ENOENT ? "unknown key" : "bad value", section, name, value);
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

int config_finish(struct config *cfg)
{
    enum log_level level;
    if (log_parse_level(cfg->level, &level) < 0) {
        log_error("log level '%s' is not one of error, warn, info, debug", cfg->level);
        return -EINVAL;
    }
    log_set_level(level);
    if (strcmp(cfg->backend, "auto") && strcmp(cfg->backend, "cpu") &&
        strcmp(cfg->backend, "nvdec")) {
        log_error("backend '%s' is not one of auto, cpu, nvdec", cfg->backend);
        return -EINVAL;
    }
    if (cfg->jpeg_quality < 2 || cfg->jpeg_quality > 31) {
        log_error("jpeg_quality %ld is outside 2..31", cfg->jpeg_quality);
        return -EINVAL;
    }
    if (cfg->follow_symlinks_out != 0 && cfg->follow_symlinks_out != 1) {
        log_error("follow_symlinks_out %ld is not 0 or 1", cfg->follow_symlinks_out);
        return -EINVAL;
    }
    if (!*cfg->cache_dir) {
        char *d = xdg_path("XDG_CACHE_HOME", ".cache", "vidfs");
        if (!d)
            return -ENOMEM;
        free(cfg->cache_dir);
        cfg->cache_dir = d;
    }
    return 0;
}

void config_print_help(FILE *f)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char opt[64];
        snprintf(opt, sizeof(opt), "-o %s=", keys[i].name);
        fprintf(f, "    %-28s %s (default: %s)\n", opt, keys[i].help,
                *keys[i].def ? keys[i].def : "\"\"");
    }
}

void config_print_ini(FILE *f)
{
    fprintf(f, "; vidfs configuration: every key with its default.\n"
               "; Read from -o config=PATH, else ~/.config/vidfs/vidfs.ini; any key can also\n"
               "; be given on the command line as -o key=value, which wins over this file.\n");
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(f, "\n[%s]\n", section);
        }
        fprintf(f, "; %s\n%s = %s\n", keys[i].help, keys[i].name, keys[i].def);
    }
}
