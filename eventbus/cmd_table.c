/* The command table: names, arities, flags and key positions as Redis 7.0
 * declares them (COMMAND INFO shows them), and the handlers. */
#include "cmd.h"

#define W  BUS_CMD_WRITE
#define R  BUS_CMD_READONLY
#define NA BUS_CMD_NOAUTH
#define F  BUS_CMD_FAST
#define B  BUS_CMD_BLOCKING
#define A  BUS_CMD_ADMIN

static const struct bus_cmd client_subs[] = {
    {"client|setname", 3, F, bus_cmd_client_setname, 0, 0, 0, "@slow @connection", NULL},
    {"client|getname", 2, F, bus_cmd_client_getname, 0, 0, 0, "@slow @connection", NULL},
    {"client|id", 2, F, bus_cmd_client_id, 0, 0, 0, "@slow @connection", NULL},
    {"client|info", 2, 0, bus_cmd_client_info, 0, 0, 0, "@slow @connection", NULL},
    {"client|list", -2, A, bus_cmd_client_list, 0, 0, 0, "@admin @slow @dangerous @connection",
     NULL},
    {"client|help", 2, F, bus_cmd_client_help, 0, 0, 0, "@slow @connection", NULL},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const struct bus_cmd command_subs[] = {
    {"command|count", 2, 0, bus_cmd_command_count, 0, 0, 0, "@slow @connection", NULL},
    {"command|info", -2, 0, bus_cmd_command_info, 0, 0, 0, "@slow @connection", NULL},
    {"command|docs", -2, 0, bus_cmd_command_docs, 0, 0, 0, "@slow @connection", NULL},
    {"command|list", -2, 0, bus_cmd_command_list, 0, 0, 0, "@slow @connection", NULL},
    {"command|help", 2, 0, bus_cmd_command_help, 0, 0, 0, "@slow @connection", NULL},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const struct bus_cmd config_subs[] = {
    {"config|get", -3, A, bus_cmd_config_get, 0, 0, 0, "@admin @slow @dangerous", NULL},
    {"config|help", 2, 0, bus_cmd_config_help, 0, 0, 0, "@slow", NULL},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const struct bus_cmd xgroup_subs[] = {
    {"xgroup|create", -5, W, bus_cmd_xgroup_create, 2, 2, 1, "@write @stream @slow", NULL},
    {"xgroup|setid", -5, W, bus_cmd_xgroup_setid, 2, 2, 1, "@write @stream @slow", NULL},
    {"xgroup|destroy", 4, W, bus_cmd_xgroup_destroy, 2, 2, 1, "@write @stream @slow", NULL},
    {"xgroup|createconsumer", 5, W, bus_cmd_xgroup_createconsumer, 2, 2, 1, "@write @stream @slow",
     NULL},
    {"xgroup|delconsumer", 5, W, bus_cmd_xgroup_delconsumer, 2, 2, 1, "@write @stream @slow", NULL},
    {"xgroup|help", 2, 0, bus_cmd_xgroup_help, 0, 0, 0, "@stream @slow", NULL},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

static const struct bus_cmd xinfo_subs[] = {
    {"xinfo|stream", -3, R, bus_cmd_xinfo_stream, 2, 2, 1, "@read @stream @slow", NULL},
    {"xinfo|groups", 3, R, bus_cmd_xinfo_groups, 2, 2, 1, "@read @stream @slow", NULL},
    {"xinfo|consumers", 4, R, bus_cmd_xinfo_consumers, 2, 2, 1, "@read @stream @slow", NULL},
    {"xinfo|help", 2, 0, bus_cmd_xinfo_help, 0, 0, 0, "@stream @slow", NULL},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};

const struct bus_cmd bus_commands[] = {
    {"ping", -1, F, bus_cmd_ping, 0, 0, 0, "@fast @connection", NULL},
    {"echo", 2, F, bus_cmd_echo, 0, 0, 0, "@fast @connection", NULL},
    {"quit", -1, NA | F, bus_cmd_quit, 0, 0, 0, "@fast @connection", NULL},
    {"select", 2, F, bus_cmd_select, 0, 0, 0, "@fast @connection", NULL},
    {"auth", -2, NA | F, bus_cmd_auth, 0, 0, 0, "@fast @connection", NULL},
    {"hello", -1, NA | F, bus_cmd_hello, 0, 0, 0, "@fast @connection", NULL},
    {"client", -2, 0, bus_cmd_client, 0, 0, 0, "@slow", client_subs},
    {"info", -1, 0, bus_cmd_info, 0, 0, 0, "@slow @dangerous", NULL},
    {"command", -1, 0, bus_cmd_command, 0, 0, 0, "@slow @connection", command_subs},
    {"config", -2, 0, bus_cmd_config, 0, 0, 0, "@slow", config_subs},
    {"dbsize", 1, R | F, bus_cmd_dbsize, 0, 0, 0, "@keyspace @read @fast", NULL},
    {"exists", -2, R | F, bus_cmd_exists, 1, -1, 1, "@keyspace @read @fast", NULL},
    {"del", -2, W, bus_cmd_del, 1, -1, 1, "@keyspace @write @slow", NULL},
    {"type", 2, R | F, bus_cmd_type, 1, 1, 1, "@keyspace @read @fast", NULL},
    {"flushall", -1, W, bus_cmd_flushall, 0, 0, 0, "@keyspace @write @slow @dangerous", NULL},
    {"flushdb", -1, W, bus_cmd_flushall, 0, 0, 0, "@keyspace @write @slow @dangerous", NULL},
    {"xadd", -5, W | F, bus_cmd_xadd, 1, 1, 1, "@write @stream @fast", NULL},
    {"xlen", 2, R | F, bus_cmd_xlen, 1, 1, 1, "@read @stream @fast", NULL},
    {"xrange", -4, R, bus_cmd_xrange, 1, 1, 1, "@read @stream @slow", NULL},
    {"xrevrange", -4, R, bus_cmd_xrevrange, 1, 1, 1, "@read @stream @slow", NULL},
    {"xread", -4, R | B, bus_cmd_xread, 0, 0, 1, "@read @stream @slow @blocking", NULL},
    {"xreadgroup", -7, W | B, bus_cmd_xread, 0, 0, 1, "@write @stream @slow @blocking", NULL},
    {"xack", -4, W | F, bus_cmd_xack, 1, 1, 1, "@write @stream @fast", NULL},
    {"xpending", -3, R, bus_cmd_xpending, 1, 1, 1, "@read @stream @slow", NULL},
    {"xclaim", -6, W | F, bus_cmd_xclaim, 1, 1, 1, "@write @stream @fast", NULL},
    {"xautoclaim", -6, W | F, bus_cmd_xautoclaim, 1, 1, 1, "@write @stream @fast", NULL},
    {"xtrim", -4, W, bus_cmd_xtrim, 1, 1, 1, "@write @stream @slow", NULL},
    {"xdel", -3, W | F, bus_cmd_xdel, 1, 1, 1, "@write @stream @fast", NULL},
    {"xgroup", -2, 0, bus_cmd_xgroup, 0, 0, 0, "@slow", xgroup_subs},
    {"xinfo", -2, 0, bus_cmd_xinfo, 0, 0, 0, "@slow", xinfo_subs},
    {NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};
