/* ofe: the command-line tool of ofevents. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static int cmd_version(int argc, char **argv)
{
    printf("ofe %s\n", OFE_VERSION);
    return 0;
}

static const struct ofe_cmd commands[] = {
    /* one line per subcommand; keep alphabetical */
    {"ce", "validate a CloudEvent (JSON format) or print the HTTP request carrying it", cmd_ce},
    {"cesql", "evaluate a CloudEvents SQL expression against an event", cmd_cesql},
    {"publish", "publish CloudEvents (JSON) to a bus topic, wait for confirmation", cmd_publish},
    {"tail", "print the events of bus topics as JSON lines as they arrive", cmd_tail},
    {"sink", "receive CloudEvents over HTTP and print them (a test and debugging sink)", cmd_sink},
    {"validate", "check configuration files (YAML)", cmd_config_validate},
    {"version", "print the version", cmd_version},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ofe COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`ofe COMMAND --help` describes one command. `ofe --version` prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version"))
        return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ofe: unknown command '%s' (see ofe --help)\n", argv[1]);
    return 2;
}
