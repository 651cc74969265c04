/* Connection, server and keyspace commands: PING, ECHO, QUIT, SELECT,
 * AUTH, HELLO, CLIENT, INFO, COMMAND, CONFIG GET, DBSIZE, EXISTS, DEL,
 * TYPE, FLUSHALL. Replies and errors as Redis 7.0 gives them. */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ofe/err.h"

void bus_reply_arity(struct bus_client *c, const char *name)
{
    resp_add_errorf(bus_client_out(c), "wrong number of arguments for '%s' command", name);
}

void bus_reply_help(struct bus_client *c, const char *cmd, const char *const *lines)
{
    struct ofe_buf *o = bus_client_out(c);
    size_t n = 0;
    while (lines[n])
        n++;
    resp_add_array(o, (long long)n + 3);
    char first[128];
    snprintf(first, sizeof(first),
             "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", cmd);
    ofe_buf_printf(o, "+%s\r\n", first);
    for (size_t i = 0; i < n; i++)
        ofe_buf_printf(o, "+%s\r\n", lines[i]);
    ofe_buf_puts(o, "+HELP\r\n+    Prints this help.\r\n");
}

BUS_CMD_FN(bus_cmd_ping)
{
    struct ofe_buf *o = bus_client_out(c);
    if (a->argc > 2) {
        bus_reply_arity(c, "ping");
        return;
    }
    if (a->argc == 2)
        resp_add_bulk(o, a->argv[1], a->argl[1]);
    else
        resp_add_simple(o, "PONG");
}

BUS_CMD_FN(bus_cmd_echo)
{
    resp_add_bulk(bus_client_out(c), a->argv[1], a->argl[1]);
}

BUS_CMD_FN(bus_cmd_quit)
{
    (void)a;
    resp_add_simple(bus_client_out(c), "OK");
    bus_client_close_after_reply(c);
}

BUS_CMD_FN(bus_cmd_select)
{
    long long db;
    struct ofe_buf *o = bus_client_out(c);
    if (!resp_str2ll(a->argv[1], a->argl[1], &db) || db < -2147483648LL || db > 2147483647LL) {
        resp_add_error(o, "value is not an integer or out of range");
        return;
    }
    if (db != 0) {
        resp_add_error(o, "DB index is out of range");
        return;
    }
    resp_add_simple(o, "OK");
}

/* Constant-time comparison of a password. */
static bool pass_eq(const char *want, const char *got, size_t glen)
{
    size_t wl = strlen(want);
    unsigned char d = wl != glen;
    for (size_t i = 0; i < glen; i++)
        d |= (unsigned char)(got[i] ^ want[i % (wl ? wl : 1)]);
    return d == 0;
}

/* ACL check of the default user. Returns true when authenticated. */
static bool check_auth(struct bus_client *c, const char *user, size_t ul, const char *pass,
                       size_t pl)
{
    const char *req = bus_server_requirepass(bus_client_server(c));
    if (ul != 7 || memcmp(user, "default", 7) != 0)
        return false;
    if (!req)
        return true; /* nopass default user */
    return pass_eq(req, pass, pl);
}

BUS_CMD_FN(bus_cmd_auth)
{
    struct ofe_buf *o = bus_client_out(c);
    if (a->argc > 3) {
        resp_add_error(o, "syntax error");
        return;
    }
    const char *user = "default", *pass;
    size_t ul = 7, pl;
    if (a->argc == 2) {
        if (!bus_server_requirepass(bus_client_server(c))) {
            resp_add_error(o, "AUTH <password> called without any password configured for the "
                              "default user. Are you sure your configuration is correct?");
            return;
        }
        pass = a->argv[1];
        pl = a->argl[1];
    } else {
        user = a->argv[1];
        ul = a->argl[1];
        pass = a->argv[2];
        pl = a->argl[2];
    }
    if (check_auth(c, user, ul, pass, pl)) {
        bus_client_set_authed(c, true);
        resp_add_simple(o, "OK");
    } else {
        resp_add_error(o, "-WRONGPASS invalid username-password pair or user is disabled.");
    }
}

static bool valid_client_name(const char *n, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (n[i] < '!' || n[i] > '~')
            return false;
    return true;
}

BUS_CMD_FN(bus_cmd_hello)
{
    struct ofe_buf *o = bus_client_out(c);
    long long ver = 0;
    size_t next = 1;
    if (a->argc >= 2) {
        if (!resp_str2ll(a->argv[1], a->argl[1], &ver)) {
            resp_add_error(o, "Protocol version is not an integer or out of range");
            return;
        }
        next = 2;
        /* RESP3 is not spoken here; clients fall back to RESP2 on NOPROTO. */
        if (ver != 2) {
            resp_add_error(o, "-NOPROTO unsupported protocol version");
            return;
        }
    }
    size_t user = 0, name = 0;
    bool has_name = false;
    for (size_t j = next; j < a->argc; j++) {
        size_t more = a->argc - 1 - j;
        if (bus_arg_is(a, j, "auth") && more >= 2) {
            user = j + 1;
            j += 2;
        } else if (bus_arg_is(a, j, "setname") && more) {
            if (!valid_client_name(a->argv[j + 1], a->argl[j + 1])) {
                resp_add_error(o, "Client names cannot contain spaces, newlines or special "
                                  "characters.");
                return;
            }
            name = j + 1;
            has_name = true;
            j++;
        } else {
            resp_add_errorf(o, "Syntax error in HELLO option '%.*s'", (int)a->argl[j], a->argv[j]);
            return;
        }
    }
    if (user) {
        if (!check_auth(c, a->argv[user], a->argl[user], a->argv[user + 1], a->argl[user + 1])) {
            resp_add_error(o, "-WRONGPASS invalid username-password pair or user is disabled.");
            return;
        }
        bus_client_set_authed(c, true);
    }
    if (!bus_client_authed(c)) {
        resp_add_error(o, "-NOAUTH HELLO must be called with the client already authenticated, "
                          "otherwise the HELLO AUTH <user> <pass> option can be used to "
                          "authenticate the client and select the RESP protocol version at the "
                          "same time");
        return;
    }
    if (has_name)
        bus_client_set_name(c, a->argv[name], a->argl[name]);
    resp_add_array(o, 14);
    resp_add_bulk_str(o, "server");
    resp_add_bulk_str(o, "redis");
    resp_add_bulk_str(o, "version");
    resp_add_bulk_str(o, BUS_REDIS_VERSION);
    resp_add_bulk_str(o, "proto");
    resp_add_int(o, 2);
    resp_add_bulk_str(o, "id");
    resp_add_int(o, (long long)bus_client_id(c));
    resp_add_bulk_str(o, "mode");
    resp_add_bulk_str(o, "standalone");
    resp_add_bulk_str(o, "role");
    resp_add_bulk_str(o, "master");
    resp_add_bulk_str(o, "modules");
    resp_add_array(o, 0);
}

BUS_CMD_FN(bus_cmd_client)
{
    (void)a;
    bus_reply_arity(c, "client");
}

BUS_CMD_FN(bus_cmd_client_setname)
{
    struct ofe_buf *o = bus_client_out(c);
    if (!valid_client_name(a->argv[2], a->argl[2])) {
        resp_add_error(o, "Client names cannot contain spaces, newlines or special characters.");
        return;
    }
    bus_client_set_name(c, a->argv[2], a->argl[2]);
    resp_add_simple(o, "OK");
}

BUS_CMD_FN(bus_cmd_client_getname)
{
    (void)a;
    const char *n = bus_client_name(c);
    if (n)
        resp_add_bulk_str(bus_client_out(c), n);
    else
        resp_add_null(bus_client_out(c));
}

BUS_CMD_FN(bus_cmd_client_id)
{
    (void)a;
    resp_add_int(bus_client_out(c), (long long)bus_client_id(c));
}

BUS_CMD_FN(bus_cmd_client_info)
{
    (void)a;
    struct ofe_buf line = OFE_BUF_INIT;
    bus_client_describe(c, &line);
    ofe_buf_puts(&line, "\n");
    resp_add_bulk(bus_client_out(c), line.data, line.len);
    ofe_buf_fini(&line);
}

BUS_CMD_FN(bus_cmd_client_list)
{
    (void)a;
    struct ofe_buf all = OFE_BUF_INIT;
    bus_server_list_clients(bus_client_server(c), &all);
    resp_add_bulk(bus_client_out(c), all.data ? all.data : "", all.len);
    ofe_buf_fini(&all);
}

BUS_CMD_FN(bus_cmd_client_help)
{
    (void)a;
    static const char *const lines[] = {
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST",
        "    Return information about client connections.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        NULL};
    bus_reply_help(c, "CLIENT", lines);
}

BUS_CMD_FN(bus_cmd_info)
{
    struct ofe_buf text = OFE_BUF_INIT;
    if (a->argc == 1) {
        bus_server_info(bus_client_server(c), &text, NULL);
    } else {
        for (size_t i = 1; i < a->argc; i++) {
            char sec[64];
            snprintf(sec, sizeof(sec), "%.*s", (int)(a->argl[i] < 63 ? a->argl[i] : 63),
                     a->argv[i]);
            if (text.len)
                ofe_buf_puts(&text, "\r\n");
            size_t before = text.len;
            bus_server_info(bus_client_server(c), &text, sec);
            if (text.len == before && before >= 2)
                text.len -= 2; /* unknown section: nothing, and no separator */
        }
    }
    resp_add_bulk(bus_client_out(c), text.data ? text.data : "", text.len);
    ofe_buf_fini(&text);
}

/* ---- COMMAND ---------------------------------------------------------------- */

static void add_flags(struct ofe_buf *o, unsigned f)
{
    const char *v[8];
    size_t n = 0;
    if (f & BUS_CMD_WRITE)
        v[n++] = "write";
    if (f & BUS_CMD_READONLY)
        v[n++] = "readonly";
    if (f & BUS_CMD_ADMIN)
        v[n++] = "admin";
    if (f & BUS_CMD_BLOCKING)
        v[n++] = "blocking";
    if (f & BUS_CMD_NOAUTH)
        v[n++] = "no_auth";
    if (f & BUS_CMD_FAST)
        v[n++] = "fast";
    resp_add_array(o, (long long)n);
    for (size_t i = 0; i < n; i++)
        ofe_buf_printf(o, "+%s\r\n", v[i]);
}

static void add_command_info(struct ofe_buf *o, const struct bus_cmd *cmd)
{
    resp_add_array(o, 10);
    resp_add_bulk_str(o, cmd->name);
    resp_add_int(o, cmd->arity);
    add_flags(o, cmd->flags);
    resp_add_int(o, cmd->first_key);
    resp_add_int(o, cmd->last_key);
    resp_add_int(o, cmd->step);
    /* ACL categories: split the space-separated list. */
    char cats[128];
    snprintf(cats, sizeof(cats), "%s", cmd->acl ? cmd->acl : "");
    size_t n = 0;
    for (char *p = cats; *p; p++)
        if (*p == '@')
            n++;
    resp_add_array(o, (long long)n);
    char *save = NULL;
    for (char *t = strtok_r(cats, " ", &save); t; t = strtok_r(NULL, " ", &save))
        ofe_buf_printf(o, "+%s\r\n", t);
    resp_add_array(o, 0); /* tips */
    resp_add_array(o, 0); /* key specs */
    size_t ns = 0;
    for (const struct bus_cmd *s = cmd->subs; s && s->name; s++)
        ns++;
    resp_add_array(o, (long long)ns);
    for (const struct bus_cmd *s = cmd->subs; s && s->name; s++)
        add_command_info(o, s);
}

BUS_CMD_FN(bus_cmd_command)
{
    (void)a;
    struct ofe_buf *o = bus_client_out(c);
    size_t n = 0;
    for (const struct bus_cmd *k = bus_commands; k->name; k++)
        n++;
    resp_add_array(o, (long long)n);
    for (const struct bus_cmd *k = bus_commands; k->name; k++)
        add_command_info(o, k);
}

BUS_CMD_FN(bus_cmd_command_count)
{
    (void)a;
    long long n = 0;
    for (const struct bus_cmd *k = bus_commands; k->name; k++)
        n++;
    resp_add_int(bus_client_out(c), n);
}

BUS_CMD_FN(bus_cmd_command_info)
{
    struct ofe_buf *o = bus_client_out(c);
    if (a->argc == 2) {
        bus_cmd_command(c, a);
        return;
    }
    resp_add_array(o, (long long)a->argc - 2);
    for (size_t i = 2; i < a->argc; i++) {
        const struct bus_cmd *k = bus_cmd_lookup(a->argv[i], a->argl[i]);
        if (k)
            add_command_info(o, k);
        else
            resp_add_null_array(o);
    }
}

BUS_CMD_FN(bus_cmd_command_docs)
{
    (void)a;
    /* No documentation is served: clients (redis-cli) fall back to theirs. */
    resp_add_array(bus_client_out(c), 0);
}

BUS_CMD_FN(bus_cmd_command_list)
{
    (void)a;
    struct ofe_buf *o = bus_client_out(c);
    long long n = 0;
    for (const struct bus_cmd *k = bus_commands; k->name; k++)
        n++;
    resp_add_array(o, n);
    for (const struct bus_cmd *k = bus_commands; k->name; k++)
        resp_add_bulk_str(o, k->name);
}

BUS_CMD_FN(bus_cmd_command_help)
{
    (void)a;
    static const char *const lines[] = {"(no subcommand)",
                                        "    Return details about all commands.",
                                        "COUNT",
                                        "    Return the total number of commands in this server.",
                                        "LIST",
                                        "    Return a list of all commands in this server.",
                                        "INFO [<command-name> ...]",
                                        "    Return details about the given commands.",
                                        "DOCS [<command-name> ...]",
                                        "    Return documentation (none is kept here).",
                                        NULL};
    bus_reply_help(c, "COMMAND", lines);
}

BUS_CMD_FN(bus_cmd_config)
{
    (void)a;
    bus_reply_arity(c, "config");
}

BUS_CMD_FN(bus_cmd_config_get)
{
    struct bus_server *srv = bus_client_server(c);
    struct ofe_buf *o = bus_client_out(c);
    char maxc[32], port[16];
    snprintf(maxc, sizeof(maxc), "%zu", (size_t)10000);
    snprintf(port, sizeof(port), "%u", bus_server_port(srv));
    struct {
        const char *k, *v;
    } params[] = {
        {"save", ""},   {"appendonly", "yes"}, {"databases", "1"},
        {"port", port}, {"maxclients", maxc},  {"stream-node-max-entries", "100"},
    };
    size_t np = sizeof(params) / sizeof(params[0]);
    bool used[8] = {false};
    size_t n = 0;
    for (size_t i = 2; i < a->argc; i++) {
        char pat[256];
        snprintf(pat, sizeof(pat), "%.*s", (int)(a->argl[i] < 255 ? a->argl[i] : 255), a->argv[i]);
        for (size_t k = 0; k < np; k++)
            if (!used[k] && fnmatch(pat, params[k].k, FNM_CASEFOLD) == 0) {
                used[k] = true;
                n++;
            }
    }
    resp_add_array(o, (long long)n * 2);
    for (size_t k = 0; k < np; k++)
        if (used[k]) {
            resp_add_bulk_str(o, params[k].k);
            resp_add_bulk_str(o, params[k].v);
        }
}

BUS_CMD_FN(bus_cmd_config_help)
{
    (void)a;
    static const char *const lines[] = {
        "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
        NULL};
    bus_reply_help(c, "CONFIG", lines);
}

/* ---- keyspace ------------------------------------------------------------------ */

BUS_CMD_FN(bus_cmd_dbsize)
{
    (void)a;
    resp_add_int(bus_client_out(c), (long long)bus_db_size(bus_client_server(c)));
}

BUS_CMD_FN(bus_cmd_exists)
{
    long long n = 0;
    for (size_t i = 1; i < a->argc; i++)
        if (bus_db_get(bus_client_server(c), a->argv[i], a->argl[i]))
            n++;
    resp_add_int(bus_client_out(c), n);
}

BUS_CMD_FN(bus_cmd_del)
{
    struct bus_server *srv = bus_client_server(c);
    long long n = 0;
    for (size_t i = 1; i < a->argc; i++) {
        struct bus_stream *s = bus_db_get(srv, a->argv[i], a->argl[i]);
        if (s) {
            bus_db_delete(srv, s);
            n++;
        }
    }
    resp_add_int(bus_client_out(c), n);
}

BUS_CMD_FN(bus_cmd_type)
{
    bool found = bus_db_get(bus_client_server(c), a->argv[1], a->argl[1]) != NULL;
    resp_add_simple(bus_client_out(c), found ? "stream" : "none");
}

BUS_CMD_FN(bus_cmd_flushall)
{
    struct ofe_buf *o = bus_client_out(c);
    if (a->argc > 2 || (a->argc == 2 && !bus_arg_is(a, 1, "sync") && !bus_arg_is(a, 1, "async"))) {
        resp_add_error(o, "syntax error");
        return;
    }
    bus_db_flush(bus_client_server(c));
    resp_add_simple(o, "OK");
}
