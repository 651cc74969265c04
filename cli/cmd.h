/* Subcommands of the ofe tool. Each lives in cli/cmd_<name>.c and has one
 * line in the table in ofe.c. A command returns the process exit code:
 * 0 success, 1 runtime failure, 2 bad usage or invalid input. */
#ifndef OFE_CLI_CMD_H
#define OFE_CLI_CMD_H

struct ofe_cmd {
    const char *name;
    const char *summary; /* one line for `ofe --help` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

/* Declarations of the cmd_* functions go here, one per subcommand. */
int cmd_ce(int argc, char **argv);
int cmd_cesql(int argc, char **argv);
int cmd_config_validate(int argc, char **argv); /* ofe validate */
int cmd_sink(int argc, char **argv);            /* ofe sink */
int cmd_publish(int argc, char **argv);
int cmd_tail(int argc, char **argv);

#endif
