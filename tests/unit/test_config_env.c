/* ${VAR} expansion and secrets read from files (common/config_env.c). */
#include "test_config_helpers.h"

#include <sys/stat.h>
#include <unistd.h>

#include "ofe/err.h"

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/ofe-config-env-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_expand(void **state)
{
    (void)state;
    setenv("OFE_T_BROKERS", "k1:9092,k2:9092", 1);
    setenv("OFE_T_PORT", "8081", 1);
    setenv("OFE_T_EMPTY", "", 1);
    setenv("OFE_T_TRUE", "yes", 1);
    unsetenv("OFE_T_UNSET");
    struct ofe_config *cfg =
        tc_load(ES_HEAD "  eventBus: default\n"
                        "  kafka:\n"
                        "    k:\n"
                        "      brokers: ${OFE_T_BROKERS}\n"
                        "      authRequired: ${OFE_T_TRUE}\n"
                        "      saslUsername: u\n"
                        "      saslPassword: \"pre-${OFE_T_UNSET:-dflt}-post\"\n"
                        "      topic: \"$${NOT_A_VAR} and $5 and ${OFE_T_EMPTY:-e}\"\n"
                        "  webhook:\n"
                        "    w:\n"
                        "      port: ${OFE_T_PORT}\n"
                        "      endpoint: \"/${OFE_T_EMPTY}x\"\n");
    assert_clean(cfg);
    const struct ofe_config_kafka_source *k = &cfg->eventsources[0]->spec.kafka.v[0];
    assert_string_equal(k->brokers, "k1:9092,k2:9092");
    assert_true(k->auth_required); /* an env value is read leniently */
    assert_string_equal(k->sasl_password, "pre-dflt-post");
    assert_string_equal(k->topic, "${NOT_A_VAR} and $5 and e");
    assert_int_equal(cfg->eventsources[0]->spec.webhook.v[0].port, 8081);
    assert_string_equal(cfg->eventsources[0]->spec.webhook.v[0].endpoint, "/x");
    ofe_config_destroy(cfg);
}

static void test_expand_errors(void **state)
{
    (void)state;
    unsetenv("OFE_T_UNSET");
    struct ofe_config *cfg = tc_load(ES_HEAD "  eventBus: default\n"
                                             "  cron:\n"
                                             "    a:\n"
                                             "      schedule: \"@every ${OFE_T_UNSET}\"\n"
                                             "      data: abc ${1X} def\n"
                                             "      contentType: x${OFE_T_UNSET\n"
                                             "    b:\n"
                                             "      schedule: '@hourly'\n"
                                             "      data: ${A B}\n"
                                             "      timezone: ${A:-${B}}\n");
    /* Columns point at the "${" inside the value. */
    assert_diag(cfg, "t.yaml:9:25: error: spec.cron.a.schedule: environment variable OFE_T_UNSET "
                     "is not set (use ${NAME:-default} for a default, $${ for a literal ${)");
    assert_diag(cfg, "t.yaml:10:19: error: spec.cron.a.data: invalid variable reference '${1': a "
                     "name of letters, digits and '_' (not starting with a digit) must follow "
                     "'${'");
    assert_diag(cfg, "t.yaml:11:21: error: spec.cron.a.contentType: unclosed variable reference "
                     "'${OFE_T_UNSET' (missing '}')");
    assert_diag(cfg, "t.yaml:14:16: error: spec.cron.b.data: unexpected character in variable "
                     "reference '${A ' (expected ${NAME} or ${NAME:-default})");
    assert_diag(cfg, "t.yaml:15:22: error: spec.cron.b.timezone: nested '${' in the default of "
                     "'${A:-' is not supported");
    ofe_config_destroy(cfg);

    /* In sandbox mode no variable is read. */
    setenv("OFE_T_SET", "x", 1);
    cfg = ofe_config_new();
    ofe_config_set_flags(cfg, OFE_CONFIG_SANDBOX);
    const char *y = ES_HEAD "  eventBus: ${OFE_T_SET}\n  cron: {a: {schedule: '@hourly'}}\n";
    ofe_config_load_buffer(cfg, "t.yaml", y, strlen(y));
    assert_diag(cfg, "t.yaml:6:13: error: spec.eventBus: environment variable OFE_T_SET is not "
                     "set");
    ofe_config_destroy(cfg);
}

static void test_secret_files(void **state)
{
    (void)state;
    write_file("pass.txt", "s3cret\r\n\n");
    write_file("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    write_file("events.yaml", ES_HEAD "  eventBus: default\n"
                                      "  kafka:\n"
                                      "    k:\n"
                                      "      brokers: a:1\n"
                                      "      authRequired: true\n"
                                      "      saslUsername: u\n"
                                      "      saslPasswordFile: pass.txt\n"
                                      "      topic: t\n"
                                      "      tls:\n"
                                      "        caCertFile: ca.pem\n"
                                      "  redis:\n"
                                      "    r:\n"
                                      "      redisHost: h:1\n"
                                      "      redisPassword: inline\n"
                                      "      redisPasswordFile: pass.txt\n"
                                      "      stream: s\n"
                                      "  mqtt:\n"
                                      "    m:\n"
                                      "      url: tcp://h:1883\n"
                                      "      topic: t\n"
                                      "      caCertFile: missing.pem\n"
                                      "      username: u\n"
                                      "      passwordFile: /\n");
    char path[512];
    snprintf(path, sizeof(path), "%s/events.yaml", tmpdir);
    struct ofe_config *cfg = ofe_config_new();
    assert_int_equal(ofe_config_load_file(cfg, path), OFE_EINVAL);
    const struct ofe_config_kafka_source *k = &cfg->eventsources[0]->spec.kafka.v[0];
    assert_string_equal(k->sasl_password, "s3cret"); /* trailing CR/LF trimmed */
    char want[1024];
    snprintf(want, sizeof(want), "%s/pass.txt", tmpdir);
    assert_string_equal(k->sasl_password_file, want); /* relative to the YAML file */
    assert_string_equal(k->tls.ca_cert,
                        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    assert_true(k->tls.node.present);
    snprintf(want, sizeof(want),
             "%s:20:7: error: spec.redis.r.redisPasswordFile: give either 'redisPassword' or "
             "'redisPasswordFile', not both",
             path);
    assert_diag(cfg, want);
    snprintf(want, sizeof(want),
             "%s:26:19: error: spec.mqtt.m.caCertFile: cannot read secret file '%s/missing.pem': "
             "No such file or directory",
             path, tmpdir);
    assert_diag(cfg, want);
    snprintf(want, sizeof(want),
             "%s:28:21: error: spec.mqtt.m.passwordFile: cannot read secret file '/': not a "
             "regular file",
             path);
    assert_diag(cfg, want);
    assert_errors(cfg, 3);
    ofe_config_destroy(cfg);

    /* From a buffer, relative paths are relative to the working directory. */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmpdir), 0);
    cfg = tc_load(ES_HEAD "  eventBus: default\n"
                          "  redis:\n"
                          "    r: {redisHost: 'h:1', redisPasswordFile: pass.txt, stream: s}\n");
    assert_clean(cfg);
    assert_string_equal(cfg->eventsources[0]->spec.redis.v[0].redis_password, "s3cret");
    ofe_config_destroy(cfg);
    assert_int_equal(chdir(cwd), 0);

    /* Sandbox: no file access. */
    cfg = ofe_config_new();
    ofe_config_set_flags(cfg, OFE_CONFIG_SANDBOX);
    const char *y =
        ES_HEAD "  eventBus: default\n"
                "  redis:\n"
                "    r: {redisHost: 'h:1', redisPasswordFile: /etc/hostname, stream: s}\n";
    ofe_config_load_buffer(cfg, "t.yaml", y, strlen(y));
    assert_diag(cfg, "t.yaml:8:46: error: spec.redis.r.redisPasswordFile: cannot read "
                     "'/etc/hostname': file access is disabled here");
    ofe_config_destroy(cfg);
}

static void test_dapr_secrets(void **state)
{
    (void)state;
    write_file("redis.pass", "from-file\n");
    setenv("OFE_T_HOST", "10.0.0.1:6379", 1);
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             COMPONENT_HEAD "  type: pubsub.redis\n"
                            "  version: v1\n"
                            "  metadata:\n"
                            "  - name: redisHost\n"
                            "    value: ${OFE_T_HOST}\n"
                            "  - name: redisPasswordFile\n"
                            "    value: %s/redis.pass\n"
                            "  - name: redisUsername\n"
                            "    secretKeyRef:\n"
                            "      name: redis-secret\n"
                            "      key: user\n",
             tmpdir);
    struct ofe_config *cfg = tc_load(yaml);
    const struct ofe_config_redis_bus *r = &cfg->buses[0]->spec.redis;
    assert_string_equal(r->redis_host, "10.0.0.1:6379");
    assert_string_equal(r->redis_password, "from-file");
    assert_diag(cfg, "t.yaml:15:7: error: spec.metadata[2].secretKeyRef: secretKeyRef is not "
                     "supported (there is no Dapr secret store here): use value: ${ENV_VAR}, or "
                     "an entry named 'redisUsernameFile' whose value is the path of a file holding "
                     "the secret");
    assert_errors(cfg, 1);
    ofe_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_dapr_secrets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
