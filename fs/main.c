/* vidfs command line: `vidfs [options] SOURCE_DIR MOUNTPOINT`. Settings come from the
 * built-in defaults, then the config file, then -o key=value, in that order. The mount is
 * set up here step by step (rather than with fuse_main) so that the log can follow the
 * daemon and misuse is refused before anything is mounted. */
#include "config.h"
#include "log.h"
#include "ops.h"
#include "vidfs.h"

#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

struct cli {
    char *source;
    char *config;
    int show_help, show_version, print_config, print_man, nonempty;
    int shared; /* allow_other or allow_root: users other than ours reach the mount */
    char **sets; /* "key=value" options for the config, applied after the file */
    int nsets;
};

enum { KEY_HELP, KEY_VERSION, KEY_PRINT_CONFIG, KEY_PRINT_MAN, KEY_SHARED };

#define CLI_OPT(t, p)                                                                              \
    {                                                                                              \
        t, offsetof(struct cli, p), 1                                                              \
    }
static const struct fuse_opt cli_spec[] = {
    CLI_OPT("config=%s", config),
    CLI_OPT("nonempty", nonempty),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("--print-config", KEY_PRINT_CONFIG),
    FUSE_OPT_KEY("--print-man", KEY_PRINT_MAN),
    FUSE_OPT_KEY("allow_other", KEY_SHARED),
    FUSE_OPT_KEY("allow_root", KEY_SHARED),
    FUSE_OPT_END,
};

/* What the mount shows, for --help and the man page alike. */
static const char *const tree[][2] = {
    {"labels.csv", "any other file: passed through, read-only"},
    {"clip.mp4/", "a video (by extension) becomes a directory:"},
    {"  meta.json", "metadata, ffprobe-like names, exact frame count; \"error\" if broken"},
    {"  source.mp4", "the original bytes"},
    {"  frames.csv", "one row a frame: index,pts_time,duration_time,key_frame"},
    {"  frames/N.FMT", "frame N in display order; FMT: nv12 yuv420p gray rgb rgbp p010 png jpg"},
    {"  frames/A-B.FMT", "frames A to B-1 stacked in one file; A-B~S.FMT: every S-th"},
    {"  frames_WxH/", "the same, scaled (frames_Wx/ or frames_xH/ keep the aspect ratio)"},
    {"  segments/S-E.mp4", "frames from S to E seconds, re-encoded (any container extension)"},
    {"  segments/S-E.copy.mp4", "a stream copy from the keyframe at or before S"},
    {"  streams/N/", "video stream N of a file with several, laid out the same"},
    {".vidfs/stats.json", "counters of the running mount"},
};

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
    case KEY_PRINT_MAN:
        c->print_man = 1;
        return 0;
    case KEY_SHARED:
        c->shared = 1;
        return 1; /* for libfuse */
    case FUSE_OPT_KEY_NONOPT:
        if (!c->source) {
            c->source = strdup(arg);
            return c->source ? 0 : -1;
        }
        return 1;
    case FUSE_OPT_KEY_OPT: {
        const char *eq = strchr(arg, '=');
        char name[64];
        if (!eq || (size_t)(eq - arg) >= sizeof(name))
            return 1;
        snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
        if (!config_has_key(name))
            return 1;
        char **n = realloc(c->sets, sizeof(*n) * (size_t)(c->nsets + 1));
        if (!n)
            return -1;
        c->sets = n;
        c->sets[c->nsets] = strdup(arg);
        return c->sets[c->nsets++] ? 0 : -1;
    }
    default:
        return 1;
    }
}

static void usage(const char *prog)
{
    printf("usage: %s [options] SOURCE_DIR MOUNTPOINT\n\n"
           "Mounts SOURCE_DIR read-only at MOUNTPOINT with every video shown as a directory\n"
           "of frames, segments and metadata. Frame N is the N-th frame `ffmpeg -i FILE\n"
           "-fps_mode passthrough` outputs; raw frames are ffmpeg's rawvideo bytes.\n\n",
           prog);
    for (size_t i = 0; i < sizeof(tree) / sizeof(tree[0]); i++)
        printf("    %-26s %s\n", tree[i][0], tree[i][1]);
    printf("\nUnmount with `fusermount3 -u MOUNTPOINT`. Without -f vidfs daemonizes once\n"
           "mounted and logs to syslog (the journal).\n\n"
           "vidfs options:\n"
           "    -h, --help                 this text, then the FUSE options\n"
           "    -V, --version              versions of vidfs and its libraries\n"
           "    --print-config             print the default INI file and exit\n"
           "    --print-man                print the man page (roff) and exit\n"
           "    -o config=PATH             INI file (default: ~/.config/vidfs/vidfs.ini)\n"
           "    -o nonempty                allow a MOUNTPOINT that is not empty\n\n"
           "Settings, as -o key=value or in the INI file:\n");
    config_print_help(stdout);
    printf("\nFUSE options:\n"
           "    -f                         stay in the foreground, logging to stderr\n"
           "    -d                         -f, and print every FUSE request\n"
           "    -s                         one request at a time\n"
           "    -o max_threads=N           request threads (default here: 64)\n"
           "    -o clone_fd                one /dev/fuse descriptor per thread\n"
           "    -o allow_other             let other users read the mount (needs\n"
           "                               user_allow_other in /etc/fuse.conf unless root)\n"
           "    -o auto_unmount            unmount when vidfs exits\n\n"
           "Mount at boot, an /etc/fstab line:\n"
           "    /srv/videos /mnt/videos fuse.vidfs ro,allow_other 0 0\n");
}

static void version(void)
{
    printf("vidfs %s\n", VIDFS_VERSION);
    printf("backends: cpu (libavcodec %s)%s%s\n", AV_STRINGIFY(LIBAVCODEC_VERSION),
           VIDFS_HAVE_NVDEC ? ", nvdec (Video Codec SDK via ffnvcodec, loaded at run time)" : "",
           VIDFS_HAVE_CUDA_KERNELS ? ", cuda kernels (PTX)" : "");
    printf("libavformat %s, libfuse %d.%d\n", AV_STRINGIFY(LIBAVFORMAT_VERSION), FUSE_MAJOR_VERSION,
           FUSE_MINOR_VERSION);
}

static void man_tree(void)
{
    for (size_t i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
        const char *p = tree[i][0];
        printf(".TP\n.B \"%s%s\"\n%s\n", p[0] == ' ' ? "\\ \\ " : "", p + strspn(p, " "),
               tree[i][1]);
    }
}

/* vidfs.1, built from the same tables as --help so that the two cannot disagree. */
static void print_man(void)
{
    printf(".TH VIDFS 1 \"\" \"vidfs %s\" \"User Commands\"\n"
           ".SH NAME\nvidfs \\- mount a directory of videos as frames, segments and metadata\n"
           ".SH SYNOPSIS\n.B vidfs\n[\\fIoptions\\fR] \\fISOURCE_DIR\\fR \\fIMOUNTPOINT\\fR\n.br\n"
           ".B mount \\-t fuse.vidfs\n\\fISOURCE_DIR\\fR \\fIMOUNTPOINT\\fR "
           "[\\fB\\-o\\fR \\fIoptions\\fR]\n"
           ".SH DESCRIPTION\nvidfs mounts \\fISOURCE_DIR\\fR read\\-only with every video shown "
           "as a directory. Frame N is the N\\-th frame that\n.B ffmpeg \\-i FILE \\-fps_mode "
           "passthrough\noutputs; raw frames are ffmpeg's rawvideo bytes.\n"
           "Without \\fB\\-f\\fR vidfs daemonizes once mounted and logs to syslog.\n"
           "It refuses a non\\-empty or already mounted \\fIMOUNTPOINT\\fR, and a "
           "\\fISOURCE_DIR\\fR that is a vidfs mount or holds the \\fIMOUNTPOINT\\fR.\n"
           ".SS The tree\n",
           VIDFS_VERSION);
    man_tree();
    printf(".SH OPTIONS\n.TP\n.BR \\-h \", \" \\-\\-help\nUsage and every option.\n"
           ".TP\n.BR \\-V \", \" \\-\\-version\nVersions of vidfs and its libraries.\n"
           ".TP\n.B \\-\\-print\\-config\nPrint the default INI file.\n"
           ".TP\n.B \\-\\-print\\-man\nPrint this page.\n"
           ".TP\n.BR \\-f \", \" \\-d \", \" \\-s\nForeground, debug, single thread (FUSE).\n"
           ".TP\n.BI \"\\-o config=\" PATH\nINI file (default: ~/.config/vidfs/vidfs.ini).\n"
           ".TP\n.B \\-o nonempty\nAllow a \\fIMOUNTPOINT\\fR that is not empty.\n"
           ".TP\n.B \\-o allow_other\nLet other users read the mount (FUSE; needs "
           "user_allow_other in /etc/fuse.conf unless root).\n"
           ".PP\nSettings, given as \\fB\\-o\\fR \\fIkey\\fR=\\fIvalue\\fR or in the INI file "
           "under their section:\n");
    config_print_man(stdout);
    printf(".SH FILES\n.TP\n.I ~/.config/vidfs/vidfs.ini\nSettings; an example with every key "
           "is installed in the documentation directory (vidfs.ini).\n"
           ".TP\n.I ~/.cache/vidfs\nIndexes and segments (cache_dir).\n"
           ".SH EXAMPLES\nMount, read a frame, unmount:\n.PP\n.nf\n"
           "vidfs \\-o frame_format=rgb ~/videos /mnt/videos\n"
           "python3 \\-c 'import numpy; print(numpy.fromfile(\"/mnt/videos/a.mp4/frames/0.rgb\", "
           "numpy.uint8).size)'\nfusermount3 \\-u /mnt/videos\n.fi\n.PP\n"
           "Mount at boot, an /etc/fstab line:\n.PP\n.nf\n"
           "/srv/videos /mnt/videos fuse.vidfs ro,allow_other,config=/etc/vidfs/vidfs.ini 0 0\n"
           ".fi\n.PP\nor a systemd unit mnt\\-videos.mount:\n.PP\n.nf\n"
           "[Mount]\nWhat=/srv/videos\nWhere=/mnt/videos\nType=fuse.vidfs\n"
           "Options=ro,allow_other,config=/etc/vidfs/vidfs.ini\n\n"
           "[Install]\nWantedBy=multi\\-user.target\n.fi\n"
           ".SH SEE ALSO\n.BR fusermount3 (1),\n.BR mount.fuse3 (8),\n.BR ffmpeg (1)\n");
}

/* The first of --print-config, --print-man, --version, --help given. */
static void print_info(const struct cli *c, const char *prog)
{
    if (c->print_config)
        config_print_ini(stdout);
    else if (c->print_man)
        print_man();
    else if (c->show_version)
        version();
    else
        usage(prog);
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
    else if (ret == -ENOENT || ret == -EACCES)
        log_error("config=%s: %s", path, strerror(-ret));
    free(def);
    for (int i = 0; ret == 0 && i < c->nsets; i++) {
        char *eq = strchr(c->sets[i], '=');
        *eq = '\0';
        ret = config_set(cfg, NULL, c->sets[i], eq + 1);
        *eq = '=';
    }
    if (ret == 0)
        ret = config_finish(cfg);
    if (ret < 0)
        config_free(cfg);
    return ret;
}

/* A crash must at least say where: the backtrace goes to stderr, then the signal is
 * raised again with its default action so the exit status tells the truth. */
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
    free(c->config);
    for (int i = 0; i < c->nsets; i++)
        free(c->sets[i]);
    free(c->sets);
}

/* /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* The mount point holding the absolute path `path` (the longest that is a prefix of it)
 * and its file system type, from /proc/self/mountinfo. */
static int mount_of(const char *path, char *where, size_t wsize, char *type, size_t tsize)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    char *line = NULL;
    size_t cap = 0, best = 0;
    while (getline(&line, &cap, f) > 0) {
        char mnt[PATH_MAX], fstype[256];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
            sscanf(dash + 3, "%255s", fstype) != 1)
            continue;
        unescape_octal(mnt);
        size_t n = strlen(mnt);
        int inside = !strncmp(path, mnt, n) && (path[n] == '/' || !path[n] || n == 1);
        if (inside && n >= best) {
            best = n;
            snprintf(where, wsize, "%s", mnt);
            snprintf(type, tsize, "%s", fstype);
        }
    }
    free(line);
    fclose(f);
    return best ? 0 : -ENOENT;
}

/* 1 when dir holds any entry, 0 when empty, -errno when it cannot be read. */
static int dir_has_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* Misuse that would hide or loop data, refused with a message before anything is mounted:
 * the mount point already a mount, not empty (also what swapped arguments look like), or
 * inside the source; a source that is a vidfs mount itself. */
static int check_paths(const char *src, const char *mnt, int nonempty)
{
    char where[PATH_MAX], type[256];
    size_t n = strlen(src);
    if (!strcmp(src, mnt) || (!strncmp(mnt, src, n) && (mnt[n] == '/' || n == 1))) {
        log_error("MOUNTPOINT %s is inside SOURCE_DIR %s: the mount would list itself", mnt, src);
        return -EINVAL;
    }
    if (mount_of(src, where, sizeof(where), type, sizeof(type)) == 0 &&
        !strcmp(type, "fuse.vidfs")) {
        log_error("SOURCE_DIR %s is inside the vidfs mount at %s; give its source instead", src,
                  where);
        return -EINVAL;
    }
    if (mount_of(mnt, where, sizeof(where), type, sizeof(type)) == 0 && !strcmp(where, mnt)) {
        log_error("MOUNTPOINT %s is already a mount point (%s); unmount it first", mnt, type);
        return -EBUSY;
    }
    int full = dir_has_entries(mnt);
    if (full < 0) {
        log_error("MOUNTPOINT %s: %s", mnt, strerror(-full));
        return full;
    }
    if (full && !nonempty) {
        log_error("MOUNTPOINT %s is not empty (-o nonempty mounts over it anyway)%s", mnt,
                  dir_has_entries(src) == 0 ? "; SOURCE_DIR is empty: are the two swapped?" : "");
        return -ENOTEMPTY;
    }
    return 0;
}

/* The source as an absolute directory path, malloc'd; NULL (logged) if it is not one. */
static char *source_dir(const char *arg)
{
    struct stat st;
    char *abs = realpath(arg, NULL);
    if (!abs || stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("SOURCE_DIR %s is not a directory", arg);
        free(abs);
        return NULL;
    }
    return abs;
}

/* Read-only at the kernel too, 1 MiB reads (max_read must also be set here), and the
 * source named in the mount table (fsname, escaped: it may hold commas). Others read only
 * what the source lets them (shared): the kernel checks the modes and owners shown. Only
 * then, as with attributes never cached each check is a GETATTR: a mount only its user
 * reaches needs none (the daemon reads as that user). */
static int add_mount_opts(struct fuse_args *args, const char *src, int shared)
{
    char *opts = NULL;
    size_t n = strlen(src) + 8;
    char *fsname = malloc(n);
    if (!fsname)
        return -ENOMEM;
    snprintf(fsname, n, "fsname=%s", src);
    int ret = fuse_opt_add_opt(&opts, "ro,subtype=vidfs,max_read=1048576") ||
                      (shared && fuse_opt_add_opt(&opts, "default_permissions")) ||
                      fuse_opt_add_opt_escaped(&opts, fsname) || fuse_opt_add_arg(args, "-o") ||
                      fuse_opt_add_arg(args, opts)
                  ? -ENOMEM
                  : 0;
    free(fsname);
    free(opts);
    return ret;
}

/* fuse_main's steps, with the thread settings passed only when given: libfuse 3.14's
 * fuse_main hands max_idle_threads' "unset" value (UINT_MAX) on and warns about it. */
static int serve(struct fuse *fuse, const struct fuse_cmdline_opts *o)
{
    if (o->singlethread)
        return fuse_loop(fuse);
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    if (!lc)
        return -ENOMEM;
    fuse_loop_cfg_set_clone_fd(lc, (unsigned)o->clone_fd);
    if (o->max_idle_threads != UINT_MAX)
        fuse_loop_cfg_set_idle_threads(lc, o->max_idle_threads);
    fuse_loop_cfg_set_max_threads(lc, o->max_threads);
    int ret = fuse_loop_mt(fuse, lc);
    fuse_loop_cfg_destroy(lc);
    return ret;
}

static int mount_and_serve(struct fuse_args *args, const struct fuse_cmdline_opts *o,
                           struct vidfs *fs)
{
    struct fuse *fuse = fuse_new(args, &vidfs_ops, sizeof(vidfs_ops), fs);
    if (!fuse)
        return 1;
    int ret = 1;
    if (fuse_mount(fuse, o->mountpoint) != 0)
        goto destroy;
    if (fuse_daemonize(o->foreground) != 0 || fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
        goto unmount;
    log_echo_errors(0); /* stderr is /dev/null from here */
    ret = serve(fuse, o) ? 1 : 0;
    fuse_remove_signal_handlers(fuse_get_session(fuse));
unmount:
    fuse_unmount(fuse);
destroy:
    fuse_destroy(fuse);
    return ret;
}

/* Everything after the command line is parsed: checks, config, the log, the mount. */
static int run(struct cli *c, struct fuse_args *args, struct fuse_cmdline_opts *o)
{
    struct config cfg;
    struct vidfs *fs = NULL;
    char *src = source_dir(c->source);
    char *mnt = src ? realpath(o->mountpoint, NULL) : NULL;
    int ret = 1;
    if (src && !mnt)
        log_error("MOUNTPOINT %s: %s", o->mountpoint, strerror(errno));
    if (!mnt || check_paths(src, mnt, c->nonempty) < 0 || load_config(c, &cfg) < 0)
        goto done;
    if (log_open(cfg.log, !o->foreground) < 0) {
        config_free(&cfg);
        goto done;
    }
    log_echo_errors(1);
    log_hook_ffmpeg();
    catch_crashes();
    /* Frames are a few MiB each and the cache holds many: above glibc's mmap threshold
     * every new frame buffer is fresh pages to fault in, which halved decode speed.
     * Keeping them in the heap lets freed frames be reused warm. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    /* Two arenas, not eight per core: memory a thread frees stays in its own arena, where
     * other threads do not reuse it (32 request threads over 16 arenas held 2.3 GB above
     * cache_mb under 64 readers; two, 0.3 GB). Frames are few, large allocations: threads
     * seldom meet on an arena's lock. */
    mallopt(M_ARENA_MAX, 2);
    if (vidfs_new(src, mnt, &cfg, &fs) < 0) {
        config_free(&cfg);
        goto done;
    }
    if (add_mount_opts(args, src, c->shared) == 0)
        ret = mount_and_serve(args, o, fs);
done:
    vidfs_free(&fs);
    log_close();
    free(src);
    free(mnt);
    return ret;
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts o = {0};
    struct cli c = {0};
    int ret = 1;
    /* 64 request threads unless -o max_threads says otherwise (libfuse's default is 10):
     * a reader whose next read of a file waits for a thread waits behind new requests. */
    if (fuse_opt_parse(&args, &c, cli_spec, cli_proc) < 0 ||
        fuse_opt_insert_arg(&args, 1, "-omax_threads=64") < 0)
        goto done;
    if (c.print_config || c.print_man || c.show_version || c.show_help) {
        print_info(&c, argv[0]);
        ret = 0;
        goto done;
    }
    if (fuse_parse_cmdline(&args, &o) != 0)
        goto done;
    if (!c.source || !o.mountpoint) {
        fprintf(stderr, "usage: %s [options] SOURCE_DIR MOUNTPOINT (--help for more)\n", argv[0]);
        goto done;
    }
    ret = run(&c, &args, &o);
done:
    free(o.mountpoint);
    cli_free(&c);
    fuse_opt_free_args(&args);
    return ret;
}
