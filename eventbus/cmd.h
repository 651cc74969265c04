/* Command handlers (cmd_conn.c, cmd_stream.c); the table is in
 * cmd_table.c. Every handler runs on the loop thread, writes exactly one
 * reply to the client's output buffer, or blocks the client. */
#ifndef OFE_BUS_CMD_H
#define OFE_BUS_CMD_H

#include "server.h"

#define BUS_CMD_FN(n) void n(struct bus_client *c, struct bus_cmdctx *a)

/* connection and keyspace */
BUS_CMD_FN(bus_cmd_ping);
BUS_CMD_FN(bus_cmd_echo);
BUS_CMD_FN(bus_cmd_quit);
BUS_CMD_FN(bus_cmd_select);
BUS_CMD_FN(bus_cmd_auth);
BUS_CMD_FN(bus_cmd_hello);
BUS_CMD_FN(bus_cmd_client);
BUS_CMD_FN(bus_cmd_client_setname);
BUS_CMD_FN(bus_cmd_client_getname);
BUS_CMD_FN(bus_cmd_client_id);
BUS_CMD_FN(bus_cmd_client_info);
BUS_CMD_FN(bus_cmd_client_list);
BUS_CMD_FN(bus_cmd_client_help);
BUS_CMD_FN(bus_cmd_info);
BUS_CMD_FN(bus_cmd_command);
BUS_CMD_FN(bus_cmd_command_count);
BUS_CMD_FN(bus_cmd_command_info);
BUS_CMD_FN(bus_cmd_command_docs);
BUS_CMD_FN(bus_cmd_command_list);
BUS_CMD_FN(bus_cmd_command_help);
BUS_CMD_FN(bus_cmd_config);
BUS_CMD_FN(bus_cmd_config_get);
BUS_CMD_FN(bus_cmd_config_help);
BUS_CMD_FN(bus_cmd_dbsize);
BUS_CMD_FN(bus_cmd_exists);
BUS_CMD_FN(bus_cmd_del);
BUS_CMD_FN(bus_cmd_type);
BUS_CMD_FN(bus_cmd_flushall);

/* streams */
BUS_CMD_FN(bus_cmd_xadd);
BUS_CMD_FN(bus_cmd_xlen);
BUS_CMD_FN(bus_cmd_xrange);
BUS_CMD_FN(bus_cmd_xrevrange);
BUS_CMD_FN(bus_cmd_xread);
BUS_CMD_FN(bus_cmd_xack);
BUS_CMD_FN(bus_cmd_xpending);
BUS_CMD_FN(bus_cmd_xclaim);
BUS_CMD_FN(bus_cmd_xautoclaim);
BUS_CMD_FN(bus_cmd_xtrim);
BUS_CMD_FN(bus_cmd_xdel);
BUS_CMD_FN(bus_cmd_xgroup);
BUS_CMD_FN(bus_cmd_xgroup_create);
BUS_CMD_FN(bus_cmd_xgroup_setid);
BUS_CMD_FN(bus_cmd_xgroup_destroy);
BUS_CMD_FN(bus_cmd_xgroup_createconsumer);
BUS_CMD_FN(bus_cmd_xgroup_delconsumer);
BUS_CMD_FN(bus_cmd_xgroup_help);
BUS_CMD_FN(bus_cmd_xinfo);
BUS_CMD_FN(bus_cmd_xinfo_stream);
BUS_CMD_FN(bus_cmd_xinfo_groups);
BUS_CMD_FN(bus_cmd_xinfo_consumers);
BUS_CMD_FN(bus_cmd_xinfo_help);

/* Case-insensitive compare of an argument with a keyword. */
static inline bool bus_arg_is(const struct bus_cmdctx *a, size_t i, const char *kw)
{
    size_t n = 0;
    while (kw[n])
        n++;
    if (a->argl[i] != n)
        return false;
    for (size_t k = 0; k < n; k++) {
        char x = a->argv[i][k], y = kw[k];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* Replies "-ERR wrong number of arguments for '<name>' command". */
void bus_reply_arity(struct bus_client *c, const char *name);
/* Writes a help array of lines, prefixed as Redis does. */
void bus_reply_help(struct bus_client *c, const char *cmd, const char *const *lines);

#endif
