/* The key table's types without a mount: what each kind of value accepts and stores. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static int set(struct config *cfg, const char *key, const char *value)
{
    return config_set(cfg, "test", key, value);
}

static void test_int(struct config *cfg)
{
    CHECK(set(cfg, "pool_size", "auto") == 0 && cfg->pool_size == 0);
    CHECK(set(cfg, "pool_size", "256") == 0 && cfg->pool_size == 256);
    CHECK(set(cfg, "pool_size", "0") == -EINVAL && cfg->pool_size == 256);
    CHECK(set(cfg, "pool_size", "257") == -EINVAL);
    CHECK(set(cfg, "threads", "auto") == -EINVAL); /* only pool_size takes auto */
    CHECK(set(cfg, "readahead", "999999") == -EINVAL);
    CHECK(set(cfg, "readahead", "+1") == -EINVAL);
    CHECK(set(cfg, "readahead", " 1") == -EINVAL);
    CHECK(set(cfg, "readahead", "1x") == -EINVAL);
    CHECK(set(cfg, "readahead", "") == -EINVAL);
    CHECK(set(cfg, "readahead", "99999999999999999999") == -EINVAL);
    CHECK(set(cfg, "readahead", "0") == 0 && cfg->readahead == 0);
}

static void test_enum(struct config *cfg)
{
    CHECK(set(cfg, "frame_format", "p010") == 0 && cfg->frame_format == CONFIG_FRAME_P010);
    CHECK(set(cfg, "frame_format", "jpg") == 0 && cfg->frame_format == CONFIG_FRAME_JPG);
    CHECK(set(cfg, "frame_format", "bmp") == -EINVAL && cfg->frame_format == CONFIG_FRAME_JPG);
    CHECK(set(cfg, "frame_format", "JPG") == -EINVAL);
    CHECK(set(cfg, "backend", "nvdec") == 0 && cfg->backend == CONFIG_BACKEND_NVDEC);
    CHECK(set(cfg, "segment_rc", "constqp") == 0 && cfg->segment_rc == CONFIG_RC_CONSTQP);
    CHECK(set(cfg, "segment_audio", "none") == 0 && cfg->segment_audio == CONFIG_AUDIO_NONE);
    CHECK(set(cfg, "level", "debug") == 0 && cfg->level == CONFIG_LEVEL_DEBUG);
}

static void test_list(struct config *cfg)
{
    CHECK(set(cfg, "gpus", "all") == 0 && cfg->gpus.n == 0);
    CHECK(set(cfg, "gpus", "3,0,255") == 0 && cfg->gpus.n == 3 && cfg->gpus.v[0] == 3 &&
          cfg->gpus.v[1] == 0 && cfg->gpus.v[2] == 255);
    CHECK(set(cfg, "gpus", "0,,1") == -EINVAL && cfg->gpus.n == 3);
    CHECK(set(cfg, "gpus", "0,") == -EINVAL);
    CHECK(set(cfg, "gpus", "") == -EINVAL);
    CHECK(set(cfg, "gpus", "256") == -EINVAL);
    CHECK(set(cfg, "gpus", "-1") == -EINVAL);
    CHECK(set(cfg, "gpus", "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15") == 0 && cfg->gpus.n == 16);
    CHECK(set(cfg, "gpus", "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16") == -EINVAL);
}

int main(void)
{
    struct config cfg;
    if (config_init(&cfg) < 0) return 1;
    CHECK(cfg.pool_size == 0 && cfg.frame_format == CONFIG_FRAME_NV12 && cfg.gpus.n == 1);
    CHECK(config_has_key("segment_gop") && !config_has_key("pool") && !config_has_key("config"));
    CHECK(set(&cfg, "pool", "1") == -ENOENT);
    test_int(&cfg);
    test_enum(&cfg);
    test_list(&cfg);
    CHECK(set(&cfg, "segment_preset", "veryslow") == 0);
    config_free(&cfg);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
