/* vidfs command line: `vidfs [options] SOURCE MOUNTPOINT`. Settings come from the built-in
 * defaults, then the config file, then -o key=value, in that order. */
#include "config.h"
#include "log.h"
#include "ops.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

struct cli {
    char *source;
    char *mountpoint;
    char *config;
    int show_help, show_version, print_config;
    int shared; /* allow_other or allow_root: users other than ours reach the mount */
    char **sets; /* "key=value" options for the config, applied after the file */
    int nsets;
};

enum { KEY_HELP, KEY_VERSION, KEY_PRINT_CONFIG, KEY_SHARED };

#define CLI_OPT(t, p) {t, offsetof(struct cli, p), 1}
static const struct fuse_opt cli_spec[] = {
    CLI_OPT("config=%s", config),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("--print-config", KEY_PRINT_CONFIG),
    FUSE_OPT_KEY("allow_other", KEY_SHARED),
    FUSE_OPT_KEY("allow_root", KEY_SHARED),
    FUSE_OPT_END,
};

static int is_config_key(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return 0;
    char key[64];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
    struct config probe;
    if (config_init(&probe) < 0)
        return 0;
    int known = config_set(&probe, key, "0") != -ENOENT;
    config_free(&probe);
    return known;
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    (void)outargs;
    struct cli *c = data;
    switch (key) {
    case KEY_HELP:
        c->show_help = 1;
        return 0;
    case KEY_VERSION:
        c->show_version = 1;
        return 0;
    case KEY_PRINT_CONFIG:
        c->print_config = 1;
        return 0;
    case KEY_SHARED:
        c->shared = 1;
        return 1; /* for libfuse */
    case FUSE_OPT_KEY_NONOPT:
        if (!c->source) {
            c->source = strdup(arg);
            return 0;
        }
        if (!c->mountpoint) /* kept for libfuse too */
            c->mountpoint = strdup(arg);
        return 1;
    case FUSE_OPT_KEY_OPT:
        if (is_config_key(arg)) {
            char **n = realloc(c->sets, sizeof(*n) * (size_t)(c->nsets + 1));
            if (!n)
                return -1;
            c->sets = n;
            c->sets[c->nsets++] = strdup(arg);
            return 0;
        }
        return 1;
    default:
        return 1;
    }
}

static void usage(const char *prog)
{
    printf("usage: %s [options] SOURCE_DIR MOUNTPOINT\n\n"
           "Mounts SOURCE_DIR read-only with every video shown as a directory of frames,\n"
           "segments and metadata (see README.md).\n\n"
           "vidfs options:\n"
           "    --print-config               print the default INI file and exit\n"
           "    -o config=PATH               INI file (default: ~/.config/vidfs/vidfs.ini)\n",
           prog);
    config_print_help(stdout);
    printf("\n");
}

static void version(void)
{
    printf("vidfs %s\n", VIDFS_VERSION);
    printf("backends: cpu (libavcodec %s)%s%s\n", AV_STRINGIFY(LIBAVCODEC_VERSION),
           VIDFS_HAVE_NVDEC ? ", nvdec (Video Codec SDK via ffnvcodec, loaded at run time)" : "",
           VIDFS_HAVE_CUDA_KERNELS ? ", cuda kernels (PTX)" : "");
    printf("libavformat %s, libfuse %d.%d\n", AV_STRINGIFY(LIBAVFORMAT_VERSION),
           FUSE_MAJOR_VERSION, FUSE_MINOR_VERSION);
}

/* Defaults, then the config file, then -o key=value. */
static int load_config(const struct cli *c, struct config *cfg)
{
    int ret = config_init(cfg);
    if (ret < 0)
        return ret;
    char *def = c->config ? NULL : config_default_path();
    const char *path = c->config ? c->config : def;
    ret = path ? config_load(cfg, path) : 0;
    if (ret == -ENOENT && !c->config)
        ret = 0;
    else if (ret < 0)
        fprintf(stderr, "vidfs: config %s: %s\n", path, strerror(-ret));
    free(def);
    for (int i = 0; ret == 0 && i < c->nsets; i++) {
        char *eq = strchr(c->sets[i], '=');
        *eq = '\0';
        ret = config_set(cfg, c->sets[i], eq + 1);
        if (ret < 0)
            fprintf(stderr, "vidfs: bad value for -o %s: %s\n", c->sets[i], eq + 1);
        *eq = '=';
    }
    if (ret == 0)
        ret = config_finish(cfg);
    if (ret < 0)
        config_free(cfg);
    return ret;
}

/* A crash must at least say where: the backtrace goes to the log (stderr), then the
 * signal is raised again with its default action so the exit status tells the truth. */
static void on_crash(int sig)
{
    void *frames[64];
    static const char msg[] = "vidfs: fatal signal; backtrace:\n";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(128 + sig);
    backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_crashes(void)
{
    void *warm[1];
    backtrace(warm, 1); /* loads libgcc now, not inside the handler */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGFPE, on_crash);
    signal(SIGILL, on_crash);
}

static void cli_free(struct cli *c)
{
    free(c->source);
    free(c->mountpoint);
    free(c->config);
    for (int i = 0; i < c->nsets; i++)
        free(c->sets[i]);
    free(c->sets);
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct cli c = {0};
    struct config cfg;
    struct vidfs *fs = NULL;
    int ret = 1;
    if (fuse_opt_parse(&args, &c, cli_spec, cli_proc) < 0)
        goto done;
    if (c.print_config) {
        config_print_ini(stdout);
        ret = 0;
        goto done;
    }
    if (c.show_version) {
        version();
        ret = 0;
        goto done;
    }
    if (c.show_help) {
        usage(argv[0]);
        fuse_opt_add_arg(&args, "--help");
        args.argv[0][0] = '\0';
        ret = fuse_main(args.argc, args.argv, &vidfs_ops, NULL);
        goto done;
    }
    if (!c.source) {
        fprintf(stderr, "usage: %s [options] SOURCE_DIR MOUNTPOINT (--help for more)\n",
                argv[0]);
        goto done;
    }
    struct stat st;
    if (stat(c.source, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "vidfs: %s is not a directory\n", c.source);
        goto done;
    }
    if (load_config(&c, &cfg) < 0)
        goto done;
    log_hook_ffmpeg();
    catch_crashes();
    /* Frames are a few MiB each and the cache holds many: above glibc's mmap threshold
     * every new frame buffer is fresh pages to fault in, which halved decode speed.
     * Keeping them in the heap lets freed frames be reused warm. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (vidfs_new(c.source, c.mountpoint, &cfg, &fs) < 0) {
        config_free(&cfg);
        goto done;
    }
    /* Read-only at the kernel too, 1 MiB reads (max_read must also be set here), and an
     * explicit thread bound: libfuse 3.14 otherwise warns about its own default. */
    fuse_opt_add_arg(&args, "-oro,fsname=vidfs,subtype=vidfs,max_read=1048576,max_threads=32");
    /* Others read only what the source lets them: the kernel checks the modes and owners
     * shown. Only then, as with attributes never cached each check is a GETATTR: a
     * mount only its user reaches needs none (the daemon reads as that user). */
    if (c.shared)
        fuse_opt_add_arg(&args, "-odefault_permissions");
    ret = fuse_main(args.argc, args.argv, &vidfs_ops, fs);
done:
    vidfs_free(&fs);
    cli_free(&c);
    fuse_opt_free_args(&args);
    return ret;
}
