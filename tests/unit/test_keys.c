/* test_keys.c - lib/net/sl_keys (keygen, key files, the mode rule) and
 * lib/net/sl_zap (allow-list, ZAP handler) with real CURVE handshakes
 * over tcp://127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>

#include "conf/sl_config.h"
#include "net/sl_keys.h"
#include "net/sl_zap.h"
#include "net/sl_zsock.h"
#include "util/sl_log.h"

static char tmpdir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-test-keys.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    assert_int_equal(chdir(tmpdir), 0);
    unsetenv("SLUICE_SECRET_KEY");
    unsetenv("SLUICE_PUBLIC_KEY");
    unsetenv("SLUICE_BROKER_PUBLIC_KEY");
    return 0;
}

static int
teardown(void **state)
{
    char *cmd = sl_asprintf("rm -rf '%s'", tmpdir);
    (void)state;
    assert_int_equal(chdir("/"), 0);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

static void
read_pub(const char *path, char key_r[41])
{
    char *error = NULL;
    if (sl_key_read_file(path, false, key_r, &error) < 0)
        fail_msg("%s", error);
}

/* ---- keygen and key files ---------------------------------------------- */

static void
test_keygen_files(void **state)
{
    char *error = NULL, sec[41], pub[41], derived[41];
    struct stat st;

    (void)state;
    umask(022);
    assert_int_equal(sl_keys_generate("n1", &error), 0);
    assert_int_equal(stat("n1.key", &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat("n1.pub", &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(sl_key_read_file("n1.key", true, sec, &error), 0);
    read_pub("n1.pub", pub);
    assert_true(sl_key_z85_valid(sec) && sl_key_z85_valid(pub));
    assert_int_equal(zmq_curve_public(derived, sec), 0);
    assert_string_equal(derived, pub);      /* a real pair */
    /* never overwrites: the old pair stays */
    assert_int_equal(sl_keys_generate("n1", &error), -1);
    assert_non_null(strstr(error, "n1.key"));
    free(error);
    error = NULL;
    assert_int_equal(sl_key_read_file("n1.key", true, derived, &error), 0);
    assert_string_equal(derived, sec);
    /* a second pair differs */
    assert_int_equal(sl_keys_generate("n2", &error), 0);
    read_pub("n2.pub", derived);
    assert_string_not_equal(derived, pub);
}

static void
write_file(const char *path, mode_t mode, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

static void
test_key_file_checks(void **state)
{
    char *error = NULL, key[41], pub[41], sec[41];

    (void)state;
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    char *text = sl_asprintf("# comment\n\n%s\r\n", sec);
    write_file("open.key", 0644, text);
    assert_int_equal(sl_key_read_file("open.key", true, key, &error), -1);
    assert_non_null(strstr(error, "group or others"));
    assert_non_null(strstr(error, "0644"));
    assert_null(strstr(error, sec));        /* never the secret in a message */
    free(error);
    error = NULL;
    /* the same file is fine as a public key, and 0600 fine as a secret */
    assert_int_equal(sl_key_read_file("open.key", false, key, &error), 0);
    assert_int_equal(chmod("open.key", 0600), 0);
    assert_int_equal(sl_key_read_file("open.key", true, key, &error), 0);
    assert_string_equal(key, sec);
    free(text);

    write_file("bad.key", 0600, "not a key at all, but long enough to be one......\n");
    assert_int_equal(sl_key_read_file("bad.key", true, key, &error), -1);
    assert_non_null(strstr(error, "not a CURVE key"));
    assert_null(strstr(error, "long enough"));      /* the line is not quoted */
    free(error);
    error = NULL;
    write_file("empty.key", 0600, "# only a comment\n");
    assert_int_equal(sl_key_read_file("empty.key", true, key, &error), -1);
    assert_non_null(strstr(error, "no key"));
    free(error);
    error = NULL;
    assert_int_equal(sl_key_read_file("missing.key", true, key, &error), -1);
    free(error);
    assert_false(sl_key_z85_valid("short"));
    assert_false(sl_key_z85_valid("0123456789012345678901234567890123456789 "));
}

/* systemd's LoadCredential=: "${CREDENTIALS_DIRECTORY}/NAME" is NAME in the
 * directory the variable names; unset, the error says why. */
static void
test_key_credentials_dir(void **state)
{
    char *error = NULL, key[41], pub[41], sec[41], *p;

    (void)state;
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_int_equal(mkdir("creds", 0700), 0);
    char *text = sl_asprintf("%s\n", sec);
    write_file("creds/node.key", 0400, text);
    free(text);

    unsetenv("CREDENTIALS_DIRECTORY");
    assert_int_equal(sl_key_read_file("${CREDENTIALS_DIRECTORY}/node.key", true, key, &error), -1);
    assert_non_null(strstr(error, "LoadCredential="));
    free(error);
    error = NULL;
    p = sl_key_path_expand("/etc/sluice/x.key", &error);     /* no variable: as written */
    assert_string_equal(p, "/etc/sluice/x.key");
    free(p);

    char *dir = sl_asprintf("%s/creds", tmpdir);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    assert_int_equal(sl_key_read_file("${CREDENTIALS_DIRECTORY}/node.key", true, key, &error), 0);
    assert_string_equal(key, sec);
    assert_int_equal(sl_key_read_file("$CREDENTIALS_DIRECTORY/node.key", true, key, &error), 0);
    assert_string_equal(key, sec);
    assert_int_equal(sl_key_read_file("${CREDENTIALS_DIRECTORY}/none.key", true, key, &error), -1);
    assert_non_null(strstr(error, dir));    /* the message names the real file */
    free(error);
    unsetenv("CREDENTIALS_DIRECTORY");
    free(dir);
}

/* ---- the mode rule -------------------------------------------------------- */

static struct sl_config *
config_with(const char *const *ov, size_t n)
{
    char *error = NULL;
    struct sl_config *c = sl_config_load_buffer("test.yaml", "", 0, (char *const *)ov, n, &error);
    if (c == NULL)
        fail_msg("%s", error);
    return c;
}

static int
resolve(const char *const *ov, size_t n, bool broker, bool client, char **error_r,
        struct sl_config **config_r)
{
    struct sl_config *c = config_with(ov, n);
    int ret = sl_keys_resolve(c, broker, client, error_r);
    *config_r = c;
    return ret;
}

static void
test_mode_rule(void **state)
{
    struct sl_config *c;
    char *error = NULL;
    char pub[41], sec[41];

    (void)state;
    assert_int_equal(sl_keys_generate("b", &error), 0);
    assert_int_equal(sl_keys_generate("w", &error), 0);
    assert_int_equal(mkdir("allow", 0755), 0);

    /* sluice all: inproc only, nothing needed, nothing encrypted */
    assert_int_equal(resolve(NULL, 0, true, true, &error, &c), 0);
    assert_false(c->security.curve);
    sl_config_destroy(&c);

    /* tcp without keys and without mode plain: refused, naming the key */
    const char *tcp_broker[] = {"broker.listen=tcp://127.0.0.1:5555"};
    assert_int_equal(resolve(tcp_broker, 1, true, false, &error, &c), -1);
    assert_non_null(strstr(error, "security.secret_key_file: required"));
    assert_non_null(strstr(error, "security.mode: plain"));
    free(error);
    error = NULL;
    sl_config_destroy(&c);

    /* plain, explicitly: runs unencrypted */
    const char *plain[] = {"broker.listen=tcp://127.0.0.1:5555", "security.mode=plain"};
    assert_int_equal(resolve(plain, 2, true, false, &error, &c), 0);
    assert_false(c->security.curve);
    sl_config_destroy(&c);

    /* a broker needs an allow-list */
    const char *no_allow[] = {"broker.listen=tcp://127.0.0.1:5555",
                              "security.secret_key_file=b.key"};
    assert_int_equal(resolve(no_allow, 2, true, false, &error, &c), -1);
    assert_non_null(strstr(error, "security.allow_dir: required"));
    free(error);
    error = NULL;
    sl_config_destroy(&c);

    const char *broker_ok[] = {"broker.listen=tcp://127.0.0.1:5555",
                               "security.secret_key_file=b.key", "security.allow_dir=allow"};
    assert_int_equal(resolve(broker_ok, 3, true, false, &error, &c), 0);
    assert_true(c->security.curve);
    read_pub("b.pub", pub);
    assert_string_equal(c->security.public_key, pub);   /* derived from the secret */
    sl_config_destroy(&c);

    /* a client needs the brokers' key */
    const char *no_server[] = {"broker.endpoints=tcp://127.0.0.1:5555",
                               "security.secret_key_file=w.key"};
    assert_int_equal(resolve(no_server, 2, false, true, &error, &c), -1);
    assert_non_null(strstr(error, "security.broker_public_key: required"));
    free(error);
    error = NULL;
    sl_config_destroy(&c);

    const char *client_ok[] = {"broker.endpoints=tcp://127.0.0.1:5555",
                               "security.secret_key_file=w.key",
                               "security.broker_public_key_file=b.pub"};
    assert_int_equal(resolve(client_ok, 3, false, true, &error, &c), 0);
    assert_true(c->security.curve);
    assert_string_equal(c->security.server_key, pub);
    /* sluice config prints the key file's name, never the key */
    char *printed = NULL;
    size_t printed_len = 0;
    FILE *out = open_memstream(&printed, &printed_len);
    assert_non_null(out);
    sl_config_print(c, out, false);
    fclose(out);
    assert_non_null(strstr(printed, "secret_key_file: \"w.key\""));
    assert_null(strstr(printed, c->security.secret_key));
    free(printed);
    sl_config_destroy(&c);

    /* a public key file that is not the secret's: refused */
    const char *mismatch[] = {"broker.endpoints=tcp://127.0.0.1:5555",
                              "security.secret_key_file=w.key", "security.public_key_file=b.pub",
                              "security.broker_public_key_file=b.pub"};
    assert_int_equal(resolve(mismatch, 4, false, true, &error, &c), -1);
    assert_non_null(strstr(error, "security.public_key_file"));
    free(error);
    error = NULL;
    sl_config_destroy(&c);

    /* a secret key others can read: refused, naming the key and the file */
    assert_int_equal(chmod("w.key", 0640), 0);
    assert_int_equal(resolve(client_ok, 3, false, true, &error, &c), -1);
    assert_non_null(strstr(error, "security.secret_key_file: w.key"));
    assert_non_null(strstr(error, "group or others"));
    free(error);
    error = NULL;
    sl_config_destroy(&c);

    /* the environment (Kubernetes Secrets) wins over files */
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    setenv("SLUICE_SECRET_KEY", sec, 1);
    setenv("SLUICE_BROKER_PUBLIC_KEY", pub, 1);
    assert_int_equal(resolve(client_ok, 3, false, true, &error, &c), 0);
    assert_string_equal(c->security.secret_key, sec);
    assert_string_equal(c->security.server_key, pub);
    sl_config_destroy(&c);
    setenv("SLUICE_SECRET_KEY", "garbage", 1);
    assert_int_equal(resolve(client_ok, 3, false, true, &error, &c), -1);
    assert_non_null(strstr(error, "SLUICE_SECRET_KEY"));
    assert_null(strstr(error, "garbage"));
    free(error);
    sl_config_destroy(&c);
    unsetenv("SLUICE_SECRET_KEY");
    unsetenv("SLUICE_BROKER_PUBLIC_KEY");

    /* the config loader checks an inline broker key's form */
    const char *bad_inline[] = {"security.broker_public_key=xyz"};
    c = sl_config_load_buffer("t.yaml", "", 0, (char *const *)bad_inline, 1, &error);
    assert_null(c);
    assert_non_null(strstr(error, "security.broker_public_key"));
    free(error);
    const char *bad_mode[] = {"security.mode=none"};
    c = sl_config_load_buffer("t.yaml", "", 0, (char *const *)bad_mode, 1, &error);
    assert_null(c);
    assert_non_null(strstr(error, "security.mode"));
    free(error);
}

/* ---- allow-list and ZAP ------------------------------------------------- */

static void
copy_pub(const char *name, const char *dest)
{
    char *cmd = sl_asprintf("cp %s.pub %s", name, dest);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void
test_allowlist_dir(void **state)
{
    char *error = NULL, z85[41];
    unsigned char bin[32];
    const char *name;
    struct sl_allowlist *list;

    (void)state;
    for (const char *const *n = (const char *const[]){"f1", "w1", "w2", "x", NULL}; *n; n++)
        assert_int_equal(sl_keys_generate(*n, &error), 0);
    assert_int_equal(system("mkdir -p allow/frontend allow/worker allow/other"), 0);
    copy_pub("f1", "allow/frontend/");
    copy_pub("w1", "allow/worker/");
    copy_pub("w2", "allow/worker-w2.pub");
    copy_pub("f1", "allow/worker-f1.pub");      /* one key, two roles */
    copy_pub("x", "allow/x.pub");               /* no role: ignored */
    copy_pub("x", "allow/other/");              /* not a role: ignored */
    list = sl_allowlist_load("allow", &error);
    assert_non_null(list);
    assert_int_equal(sl_allowlist_count(list, SL_ROLE_FRONTEND), 1);
    assert_int_equal(sl_allowlist_count(list, SL_ROLE_WORKER), 3);
    read_pub("f1.pub", z85);
    zmq_z85_decode(bin, z85);
    assert_int_equal(sl_allowlist_roles(list, bin, &name), SL_ROLE_FRONTEND | SL_ROLE_WORKER);
    read_pub("x.pub", z85);
    zmq_z85_decode(bin, z85);
    assert_int_equal(sl_allowlist_roles(list, bin, &name), 0);
    sl_allowlist_destroy(&list);
    assert_null(list);

    /* a .pub without a key fails the load, naming the file */
    write_file("allow/worker/broken.pub", 0644, "nothing\n");
    assert_null(sl_allowlist_load("allow", &error));
    assert_non_null(strstr(error, "broken.pub"));
    free(error);
    error = NULL;
    assert_null(sl_allowlist_load("nonexistent", &error));
    assert_non_null(strstr(error, "security.allow_dir"));
    free(error);
}

struct node {
    struct sl_config *config;
    void *sock;
};

/* A DEALER with key pair name connected to the server at endpoint. */
static void
client_open(struct node *n, void *zctx, const char *name, const char *server_pub,
            const char *endpoint)
{
    char *key = sl_asprintf("security.secret_key_file=%s.key", name);
    char *srv = sl_asprintf("security.broker_public_key=%s", server_pub);
    char *ep = sl_asprintf("broker.endpoints=%s", endpoint);
    const char *ov[] = {key, srv, ep};
    char *error = NULL;
    const char *zerror;

    n->config = config_with(ov, 3);
    if (sl_keys_resolve(n->config, false, true, &error) < 0)
        fail_msg("%s", error);
    n->sock = zmq_socket(zctx, ZMQ_DEALER);
    sl_zsock_set_int(n->sock, ZMQ_LINGER, 0);
    assert_int_equal(sl_zsock_set_curve(n->sock, n->config, endpoint, false, &zerror), 1);
    assert_int_equal(zmq_connect(n->sock, endpoint), 0);
    free(key);
    free(srv);
    free(ep);
}

static void
node_close(struct node *n)
{
    zmq_close(n->sock);
    sl_config_destroy(&n->config);
}

/* Sends "hello" from c; the roles the server sees, or -1 if nothing
 * arrived within ms. */
static int
roundtrip(void *server, void *client, int ms)
{
    zmq_msg_t ident, msg;
    const char *uid;
    int roles = -1;

    zmq_send(client, "hello", 5, ZMQ_DONTWAIT);
    zmq_pollitem_t item = {.socket = server, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, ms) <= 0)
        return -1;
    zmq_msg_init(&ident);
    zmq_msg_init(&msg);
    assert_true(zmq_msg_recv(&ident, server, 0) >= 0);
    assert_true(zmq_msg_recv(&msg, server, 0) >= 0);
    roles = (int)sl_zap_msg_roles(&msg, &uid);
    zmq_msg_close(&ident);
    zmq_msg_close(&msg);
    return roles;
}

static void
test_zap_handshakes(void **state)
{
    char *error = NULL, bpub[41], endpoint[64];
    size_t len = sizeof(endpoint);
    const char *zerror;
    void *zctx = zmq_ctx_new();
    struct node fe, wk, rogue;
    struct sl_zap *zap;

    (void)state;
    for (const char *const *n = (const char *const[]){"b", "fe", "wk", "rogue", NULL}; *n; n++)
        assert_int_equal(sl_keys_generate(*n, &error), 0);
    assert_int_equal(system("mkdir -p allow/frontend allow/worker"), 0);
    copy_pub("fe", "allow/frontend/");
    copy_pub("wk", "allow/worker/");
    read_pub("b.pub", bpub);

    /* the broker side: as broker_start() sets it up */
    const char *ov[] = {"broker.listen=tcp://127.0.0.1:5555", "security.secret_key_file=b.key",
                        "security.allow_dir=allow"};
    struct sl_config *bc = config_with(ov, 3);
    assert_int_equal(sl_keys_resolve(bc, true, false, &error), 0);
    zap = sl_zap_start(zctx, "allow", SL_ROLE_FRONTEND | SL_ROLE_WORKER, &error);
    assert_non_null(zap);
    void *server = zmq_socket(zctx, ZMQ_ROUTER);
    sl_zsock_set_int(server, ZMQ_LINGER, 0);
    assert_int_equal(sl_zsock_set_curve(server, bc, "tcp://127.0.0.1:*", true, &zerror), 1);
    assert_int_equal(zmq_bind(server, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, endpoint, &len), 0);

    client_open(&fe, zctx, "fe", bpub, endpoint);
    client_open(&wk, zctx, "wk", bpub, endpoint);
    client_open(&rogue, zctx, "rogue", bpub, endpoint);
    assert_int_equal(roundtrip(server, fe.sock, 3000), SL_ROLE_FRONTEND);
    assert_int_equal(roundtrip(server, wk.sock, 3000), SL_ROLE_WORKER);
    assert_int_equal(roundtrip(server, rogue.sock, 1000), -1);     /* refused */

    /* a plain client: the handshake fails before ZAP */
    void *plain = zmq_socket(zctx, ZMQ_DEALER);
    sl_zsock_set_int(plain, ZMQ_LINGER, 0);
    assert_int_equal(zmq_connect(plain, endpoint), 0);
    assert_int_equal(roundtrip(server, plain, 1000), -1);

    /* a client expecting another server key never gets through */
    char other_pub[41], other_sec[41];
    struct node impostor;
    assert_int_equal(zmq_curve_keypair(other_pub, other_sec), 0);
    client_open(&impostor, zctx, "wk", other_pub, endpoint);
    assert_int_equal(roundtrip(server, impostor.sock, 1000), -1);
    node_close(&impostor);

    /* remove wk's key, reload: a new connection with it is refused; the
     * rogue's key added: admitted at its next connect */
    assert_int_equal(unlink("allow/worker/wk.pub"), 0);
    copy_pub("rogue", "allow/worker/");
    assert_int_equal(sl_zap_reload(zap, &error), 0);
    node_close(&wk);
    client_open(&wk, zctx, "wk", bpub, endpoint);
    assert_int_equal(roundtrip(server, wk.sock, 1000), -1);
    node_close(&rogue);
    client_open(&rogue, zctx, "rogue", bpub, endpoint);
    assert_int_equal(roundtrip(server, rogue.sock, 3000), SL_ROLE_WORKER);

    /* a broken directory: the reload fails and the old list stays */
    write_file("allow/worker/broken.pub", 0644, "x\n");
    assert_int_equal(sl_zap_reload(zap, &error), -1);
    free(error);
    assert_int_equal(roundtrip(server, rogue.sock, 3000), SL_ROLE_WORKER);

    zmq_close(plain);
    node_close(&fe);
    node_close(&wk);
    node_close(&rogue);
    zmq_close(server);
    sl_zap_stop(&zap);
    assert_null(zap);
    sl_config_destroy(&bc);
    zmq_ctx_term(zctx);
}

/* Without a ZAP handler a CURVE server with ZMQ_ZAP_ENFORCE_DOMAIN admits
 * nobody: it fails closed. */
static void
test_zap_enforced(void **state)
{
    char *error = NULL, bpub[41], endpoint[64];
    size_t len = sizeof(endpoint);
    const char *zerror;
    void *zctx = zmq_ctx_new();
    struct node wk;

    (void)state;
    assert_int_equal(sl_keys_generate("b", &error), 0);
    assert_int_equal(sl_keys_generate("wk", &error), 0);
    assert_int_equal(system("mkdir -p allow"), 0);
    read_pub("b.pub", bpub);
    const char *ov[] = {"broker.listen=tcp://127.0.0.1:5555", "security.secret_key_file=b.key",
                        "security.allow_dir=allow"};
    struct sl_config *bc = config_with(ov, 3);
    assert_int_equal(sl_keys_resolve(bc, true, false, &error), 0);
    void *server = zmq_socket(zctx, ZMQ_ROUTER);
    sl_zsock_set_int(server, ZMQ_LINGER, 0);
    assert_int_equal(sl_zsock_set_curve(server, bc, "tcp://127.0.0.1:*", true, &zerror), 1);
    assert_int_equal(zmq_bind(server, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, endpoint, &len), 0);
    client_open(&wk, zctx, "wk", bpub, endpoint);
    assert_int_equal(roundtrip(server, wk.sock, 1500), -1);
    node_close(&wk);
    zmq_close(server);
    sl_config_destroy(&bc);
    zmq_ctx_term(zctx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keygen_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_credentials_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowlist_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zap_handshakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zap_enforced, setup, teardown),
    };
    sl_log_open("test_keys", SL_LOG_STDERR, LOG_WARNING);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
