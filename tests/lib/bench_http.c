/* nginx and wrk for the HTTP benchmarks (bench_http.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_http.h"
#include "ofe/buf.h"
#include "testutil.h"

void tu_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

struct tu_proc *tu_nginx_start(const char *dir, int *port)
{
    char conf[4200], text[4096], log[4200];
    *port = tu_free_port();
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    snprintf(text, sizeof(text),
             "daemon off;\nmaster_process off;\nworker_processes 1;\n"
             "pid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n"
             "events { worker_connections 4096; }\n"
             "http {\n  access_log off;\n  keepalive_requests 10000000;\n"
             "  client_body_temp_path %s/nginx-body;\n  proxy_temp_path %s/nginx-proxy;\n"
             "  fastcgi_temp_path %s/nginx-fcgi;\n  uwsgi_temp_path %s/nginx-uwsgi;\n"
             "  scgi_temp_path %s/nginx-scgi;\n"
             "  server {\n    listen 127.0.0.1:%d;\n    location / { return 202; }\n  }\n}\n",
             dir, dir, dir, dir, dir, dir, dir, *port);
    tu_write_text(conf, text);
    snprintf(log, sizeof(log), "%s/nginx.log", dir);
    const char *av[] = {"nginx", "-p", dir, "-c", conf, "-e", "stderr", NULL};
    struct tu_proc *p = tu_proc_start(av, log);
    if (!p || tu_wait_port(*port, 5000) != 0) {
        tu_proc_free(p);
        return NULL;
    }
    return p;
}

double tu_wrk_post(const char *dir, int port, int seconds, int conns, const struct ofe_hdrs *h,
                   const void *body, size_t body_len)
{
    struct ofe_buf lua = OFE_BUF_INIT;
    ofe_buf_puts(&lua, "wrk.method = \"POST\"\nwrk.body = \"");
    ofe_buf_append(&lua, body, body_len);
    ofe_buf_puts(&lua, "\"\n");
    for (size_t i = 0; i < h->n; i++)
        ofe_buf_printf(&lua, "wrk.headers[\"%.*s\"] = \"%.*s\"\n", (int)h->v[i].name_len,
                       h->v[i].name, (int)h->v[i].value_len, h->v[i].value);
    ofe_buf_puts(&lua, "wrk.headers[\"User-Agent\"] = \"ofevents/bench\"\n");
    char path[4200], cmd[9000], out[4200];
    snprintf(path, sizeof(path), "%s/post.lua", dir);
    tu_write_text(path, lua.data);
    ofe_buf_fini(&lua);
    snprintf(out, sizeof(out), "%s/wrk.out", dir);
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c%d -d%ds -s %s http://127.0.0.1:%d/ > %s 2>&1", conns,
             seconds, path, port, out);
    if (system(cmd) != 0)
        return -1;
    char *t = tu_read_file(out, NULL);
    char *p = t ? strstr(t, "Requests/sec:") : NULL;
    double r = p ? strtod(p + 13, NULL) : -1;
    free(t);
    return r;
}
