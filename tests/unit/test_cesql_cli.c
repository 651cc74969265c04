/* `ofe cesql` as a user runs it: the binary (argv[1]) is started with
 * arguments and stdin, and its stdout, stderr and exit status are checked.
 * Every successful run must print exactly one JSON line. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *ofe_bin;
static char tmpdir[256];

struct outcome {
    char out[8192];
    char err[8192];
    int status; /* exit code, or -1 */
};

static void drain(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == size - 1)
            break;
    }
    buf[n] = '\0';
}

/* Runs `ofe cesql ARGS...` (NULL-terminated) with `input` on stdin. */
static struct outcome run_cli(const char *input, ...)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = ofe_bin;
    argv[argc++] = "cesql";
    va_list ap;
    va_start(ap, input);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    char inpath[300], outpath[300], errpath[300];
    snprintf(inpath, sizeof(inpath), "%s/stdin", tmpdir);
    snprintf(outpath, sizeof(outpath), "%s/stdout", tmpdir);
    snprintf(errpath, sizeof(errpath), "%s/stderr", tmpdir);
    FILE *f = fopen(inpath, "wb");
    assert_non_null(f);
    if (input)
        fputs(input, f);
    fclose(f);

    struct outcome o = {.status = -1};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(inpath, O_RDONLY);
        int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(ofe_bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    int fd = open(outpath, O_RDONLY);
    assert_true(fd >= 0);
    drain(fd, o.out, sizeof(o.out));
    close(fd);
    fd = open(errpath, O_RDONLY);
    assert_true(fd >= 0);
    drain(fd, o.err, sizeof(o.err));
    close(fd);
    return o;
}

static void write_file(const char *name, const char *content, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* The run printed exactly `line` + newline on stdout and exited 0. */
static void expect_line(struct outcome o, const char *line)
{
    char want[1024];
    snprintf(want, sizeof(want), "%s\n", line);
    if (o.status != 0 || strcmp(o.out, want) != 0)
        fail_msg("want \"%s\" exit 0, got \"%s\" exit %d (stderr: %s)", line, o.out, o.status,
                 o.err);
}

static void expect_usage_error(struct outcome o, const char *err_part)
{
    if (o.status != 2 || o.out[0] != '\0' || !strstr(o.err, err_part))
        fail_msg("want exit 2, no stdout, stderr with \"%s\"; got exit %d, stdout \"%s\", "
                 "stderr \"%s\"",
                 err_part, o.status, o.out, o.err);
}

static void test_results(void **state)
{
    expect_line(run_cli(NULL, "TRUE", NULL), "{\"result\": true, \"error\": null}");
    expect_line(run_cli(NULL, "1 + 2 * 3", NULL), "{\"result\": 7, \"error\": null}");
    expect_line(run_cli(NULL, "-10", NULL), "{\"result\": -10, \"error\": null}");
    expect_line(run_cli(NULL, "--", "-2147483648", NULL),
                "{\"result\": -2147483648, \"error\": null}");
    expect_line(run_cli(NULL, "CONCAT('a\"b', '\\\\', 'tab\there')", NULL),
                "{\"result\": \"a\\\"b\\\\tab\\there\", \"error\": null}");
    expect_line(run_cli(NULL, "UPPER('straße')", NULL),
                "{\"result\": \"STRAßE\", \"error\": null}");
    expect_line(run_cli(NULL, "'\xff'", NULL), "{\"result\": \"\\ufffd\", \"error\": null}");
}

static void test_errors(void **state)
{
    expect_line(run_cli(NULL, "missing", NULL),
                "{\"result\": false, \"error\": \"missingAttribute\"}");
    expect_line(run_cli(NULL, "5 / 0", NULL), "{\"result\": 0, \"error\": \"math\"}");
    expect_line(run_cli(NULL, "ABS(-2147483648)", NULL),
                "{\"result\": 2147483647, \"error\": \"math\"}");
    expect_line(run_cli(NULL, "INT('ABC')", NULL), "{\"result\": 0, \"error\": \"cast\"}");
    expect_line(run_cli(NULL, "NOFUNC(1)", NULL),
                "{\"result\": false, \"error\": \"missingFunction\"}");
    expect_line(run_cli(NULL, "LEFT('abc', -2)", NULL),
                "{\"result\": \"abc\", \"error\": \"functionEvaluation\"}");
    struct outcome o = run_cli(NULL, "ABC(", NULL);
    expect_line(o, "{\"result\": false, \"error\": \"parse\"}");
    assert_non_null(strstr(o.err, "column 5"));
    o = run_cli(NULL, "x LIKE 123", NULL);
    expect_line(o, "{\"result\": false, \"error\": \"parse\"}");
    assert_non_null(strstr(o.err, "string literal"));
    /* Several errors: the first is printed, the others listed on stderr. */
    o = run_cli(NULL, "nope + INT('x')", NULL);
    expect_line(o, "{\"result\": 0, \"error\": \"missingAttribute\"}");
    assert_non_null(strstr(o.err, "2 errors"));
}

static void test_default_event(void **state)
{
    expect_line(run_cli(NULL, "specversion", NULL), "{\"result\": \"1.0\", \"error\": null}");
    expect_line(run_cli(NULL, "EXISTS id AND EXISTS source AND EXISTS type", NULL),
                "{\"result\": true, \"error\": null}");
    expect_line(run_cli(NULL, "EXISTS subject OR EXISTS time OR EXISTS datacontenttype", NULL),
                "{\"result\": false, \"error\": null}");
    expect_line(run_cli(NULL, "subject", NULL),
                "{\"result\": false, \"error\": \"missingAttribute\"}");
}

static const char *event_json =
    "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"https://example.com/orders\","
    "\"type\":\"com.example.order\",\"subject\":\"Grüße\",\"time\":\"2024-05-01T10:00:00Z\","
    "\"count\":3,\"urgent\":true,\"region\":\"eu\",\"data\":{\"x\":1}}";

static void test_event_file(void **state)
{
    char path[300];
    write_file("event.json", event_json, path, sizeof(path));
    expect_line(run_cli(NULL, "--event", path, "count * 2", NULL),
                "{\"result\": 6, \"error\": null}");
    expect_line(run_cli(NULL, "--event", path, "urgent", NULL),
                "{\"result\": true, \"error\": null}");
    char opt[320];
    snprintf(opt, sizeof(opt), "--event=%s", path);
    expect_line(run_cli(NULL, opt, "time", NULL),
                "{\"result\": \"2024-05-01T10:00:00Z\", \"error\": null}");
    expect_line(run_cli(NULL, "--event", path,
                        "type = 'com.example.order' AND source LIKE 'https://%' AND "
                        "region IN ('eu', 'us') AND LENGTH(subject) = 5",
                        NULL),
                "{\"result\": true, \"error\": null}");
    expect_line(run_cli(NULL, "--event", path, "LOWER(subject)", NULL),
                "{\"result\": \"grüße\", \"error\": null}");
    /* The expression may come before --event. */
    expect_line(run_cli(NULL, "id", "--event", path, NULL),
                "{\"result\": \"e-1\", \"error\": null}");
    /* From stdin. */
    expect_line(run_cli(event_json, "--event", "-", "count + 1", NULL),
                "{\"result\": 4, \"error\": null}");
}

static void test_bad_usage(void **state)
{
    char path[300];
    expect_usage_error(run_cli(NULL, NULL), "usage: ofe cesql");
    expect_usage_error(run_cli(NULL, "TRUE", "FALSE", NULL), "one EXPRESSION expected");
    expect_usage_error(run_cli(NULL, "--bogus", "TRUE", NULL), "unknown option --bogus");
    expect_usage_error(run_cli(NULL, "--event", NULL), "--event needs a file name");
    expect_usage_error(run_cli(NULL, "--event", "a", "--event", "b", "TRUE", NULL),
                       "--event given twice");
    snprintf(path, sizeof(path), "%s/does-not-exist.json", tmpdir);
    expect_usage_error(run_cli(NULL, "--event", path, "TRUE", NULL), "cannot open");
    write_file("notjson.json", "{\"specversion\": ", path, sizeof(path));
    expect_usage_error(run_cli(NULL, "--event", path, "TRUE", NULL),
                       "not a valid JSON-format CloudEvent");
    write_file("noid.json", "{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}", path,
               sizeof(path));
    expect_usage_error(run_cli(NULL, "--event", path, "TRUE", NULL), "id");
    expect_usage_error(run_cli("[1,2]", "--event", "-", "TRUE", NULL),
                       "not a valid JSON-format CloudEvent");
    struct outcome o = run_cli(NULL, "--help", NULL);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "usage: ofe cesql [--event FILE|-] EXPRESSION"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-ofe\n", argv[0]);
        return 2;
    }
    ofe_bin = argv[1];
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/ofe-cesql-cli-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_default_event), cmocka_unit_test(test_event_file),
        cmocka_unit_test(test_bad_usage),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    static const char *const files[] = {"stdin",      "stdout",       "stderr",
                                        "event.json", "notjson.json", "noid.json"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s/%s", tmpdir, files[i]);
        unlink(cmd);
    }
    rmdir(tmpdir);
    return rc;
}
