/* The example service (examples/advice_service.c), compiled in here so its
 * request handler, worker pool and writer run under the suite's valgrind,
 * ASan and ThreadSanitizer builds: every good request's advice equals what
 * `keel advise` prints for the same profile, holdings and quotes; bad
 * requests get error lines and the service goes on; responses come in
 * request order whatever the number of workers; a response is written
 * before the input ends; the stop flag and a failed write end the service
 * cleanly; and the command line's usage errors. */
#define main advice_service_main
int advice_service_main(int argc, char **argv);
#include "../../examples/advice_service.c"
#undef main

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "keel_test.h"

#define TEMPLATE "strategies/templates/standard.lua"

static const char QUOTES[] =
    "{\"CASH\": 127.5099, \"BOND\": {\"price\": 141.7317, \"lot\": 1, \"min_trade\": 50, \"expense_ratio\": 0.0005},"
    " \"EQUITY\": 216.9675, \"EM_EQUITY\": {\"price\": 179.8098, \"lot\": 1}, \"GOLD\": 1829.5233,"
    " \"CRYPTO\": 8614.107}";

/* The good requests: profile, holdings (or NULL). */
static const char *const GOOD[][2] = {
    {"{\"age\": 35, \"horizon\": 25, \"goal\": \"retirement\", \"initial\": 20000, \"monthly\": 500,"
     " \"liquidity\": 5000, \"answers\": {\"horizon\": 5, \"drop\": 3, \"income\": 3, \"experience\": 3,"
     " \"tradeoff\": 4, \"loss_capacity\": 3}}",
     "{\"cash\": 1200, \"positions\": {\"EQUITY\": 40, \"BOND\": 25.5}}"},
    {"{\"age\": 62, \"horizon\": 4, \"goal\": \"travel\", \"risk_score\": 3, \"initial\": 15000}", NULL},
    {"{\"age\": 28, \"horizon\": 40, \"goal\": \"general\", \"risk_score\": 10, \"initial\": 50000, \"monthly\": 1000}",
     "{\"cash\": 0, \"positions\": {\"CRYPTO\": 0.5, \"GOLD\": 3}}"},
    {"{\"age\": 45, \"horizon\": 12, \"goal\": \"education\", \"risk_score\": 6, \"initial\": 8000,"
     " \"liquidity\": 2000}",
     "{\"cash\": 300, \"positions\": {\"EQUITY\": 10}}"},
};

/* {"id": id, "profile": ..., "holdings": ..., "quotes": ...} (id and
 * holdings when given), malloc'd. */
/* The first good profile with a goal amount, for the goal odds. */
static const char GOAL_PROFILE[] =
    "{\"age\": 35, \"horizon\": 25, \"goal\": \"retirement\", \"initial\": 20000, \"monthly\": 500,"
    " \"liquidity\": 5000, \"goal_amount\": 400000, \"risk_score\": 7}";

static char *request(const char *id_json, const char *profile, const char *holdings, const char *quotes) {
  char *r = NULL;
  assert_true(asprintf(&r, "{%s%s%s\"profile\": %s%s%s, \"quotes\": %s}", id_json ? "\"id\": " : "",
                       id_json ? id_json : "", id_json ? ", " : "", profile, holdings ? ", \"holdings\": " : "",
                       holdings ? holdings : "", quotes) > 0);
  return r;
}

/* Runs `keel advise` on the request's parts and returns its JSON. */
static json_t *keel_advise_cli(const char *profile, const char *holdings, const char *history, const char *paths) {
  static int k;
  char pf[64], hf[64], qf[64], of[64];
  snprintf(pf, sizeof pf, "cli_profile%d.json", k);
  snprintf(hf, sizeof hf, "cli_holdings%d.json", k);
  snprintf(qf, sizeof qf, "cli_quotes%d.json", k);
  snprintf(of, sizeof of, "cli_out%d.json", k++);
  char pp[4200], hp[4200], qp[4200], op[4200];
  snprintf(pp, sizeof pp, "%s", keel_test_tmp_path(pf));
  snprintf(hp, sizeof hp, "%s", keel_test_tmp_path(hf));
  snprintf(qp, sizeof qp, "%s", keel_test_tmp_path(qf));
  snprintf(op, sizeof op, "%s", keel_test_tmp_path(of));
  assert_int_equal(keel_test_write_file(pp, profile, strlen(profile)), 0);
  if (holdings) assert_int_equal(keel_test_write_file(hp, holdings, strlen(holdings)), 0);
  assert_int_equal(keel_test_write_file(qp, QUOTES, strlen(QUOTES)), 0);
  const char *argv[24];
  size_t n = 0;
  argv[n++] = KEEL_CLI_PATH;
  argv[n++] = "advise";
  argv[n++] = "--template";
  argv[n++] = keel_test_source_path(TEMPLATE);
  argv[n++] = "--profile";
  argv[n++] = pp;
  if (holdings) {
    argv[n++] = "--holdings";
    argv[n++] = hp;
  }
  argv[n++] = "--quotes";
  argv[n++] = qp;
  argv[n++] = "--cost-bps";
  argv[n++] = "10";
  argv[n++] = "--fee";
  argv[n++] = "1.5";
  if (history) {
    argv[n++] = "--history";
    argv[n++] = history;
    argv[n++] = "--paths";
    argv[n++] = paths;
  }
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fo = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1);
    execv(KEEL_CLI_PATH, (char *const *)argv);
    _exit(127);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  json_error_t e;
  json_t *j = json_load_file(op, 0, &e);
  if (!j) fail_msg("keel advise printed no JSON: %s", e.text);
  return j;
}

static service_options options(int workers) {
  service_options o;
  service_options_default(&o);
  o.template_name = keel_test_source_path(TEMPLATE);
  o.workers = workers;
  o.cost_bps = 10;
  o.fee = 1.5;
  return o;
}

/* Serves the text of reqs with the options; returns the output (caller
 * frees) and serve's status in *rc. */
/* A descriptor reading text (from a file in the test's folder). */
static int text_fd(const char *text) {
  const char *path = keel_test_tmp_path("requests.jsonl");
  assert_int_equal(keel_test_write_file(path, text, strlen(text)), 0);
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  return fd;
}

static char *serve_text(const service_options *o, const char *reqs, int *rc) {
  service S;
  assert_int_equal(service_open(&S, o), 0);
  int in = text_fd(reqs);
  char *out = NULL;
  size_t outlen = 0;
  FILE *of = open_memstream(&out, &outlen);
  assert_non_null(of);
  volatile sig_atomic_t stop = 0;
  *rc = serve(&S, in, of, &stop);
  close(in);
  fclose(of);
  service_close(&S);
  return out;
}

/* The output's lines, parsed; asserts each is one JSON object. */
static size_t parse_lines(char *out, json_t **lines, size_t max) {
  size_t n = 0;
  for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    assert_true(n < max);
    json_error_t e;
    lines[n] = json_loads(l, 0, &e);
    if (!json_is_object(lines[n])) fail_msg("response %zu is not a JSON object: %s", n + 1, l);
    n++;
  }
  return n;
}

static void assert_error(json_t *resp, size_t lineno, const char *status, const char *needle) {
  assert_int_equal(json_integer_value(json_object_get(resp, "line")), lineno);
  json_t *e = json_object_get(resp, "error");
  assert_non_null(e);
  assert_null(json_object_get(resp, "advice"));
  assert_string_equal(json_string_value(json_object_get(e, "status")), status);
  const char *msg = json_string_value(json_object_get(e, "message"));
  if (!msg || !strstr(msg, needle)) fail_msg("line %zu: error '%s' does not mention '%s'", lineno, msg, needle);
}

static void assert_advice_equal(json_t *resp, size_t lineno, json_t *want) {
  assert_int_equal(json_integer_value(json_object_get(resp, "line")), lineno);
  json_t *adv = json_object_get(resp, "advice");
  if (!adv) fail_msg("line %zu: no advice: %s", lineno, json_dumps(resp, 0));
  if (!json_equal(adv, want)) {
    char *a = json_dumps(adv, JSON_SORT_KEYS | JSON_INDENT(1)), *b = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));
    keel_test_write_file(keel_test_tmp_path("service_advice.json"), a, strlen(a));
    keel_test_write_file(keel_test_tmp_path("cli_advice.json"), b, strlen(b));
    fail_msg("line %zu: the service's advice\n%s\ndiffers from keel advise's\n%s", lineno, a, b);
  }
}

/* Good and bad requests mixed: the good ones get keel advise's advice,
 * with their ids; each bad one an error line; blank lines none. */
static void test_requests_and_errors(void **state) {
  (void)state;
  char *good[4];
  for (size_t i = 0; i < 4; i++) {
    char id[16];
    snprintf(id, sizeof id, "%zu", 100 + i);
    good[i] = request(i == 1 ? "\"u-1\"" : id, GOOD[i][0], GOOD[i][1], QUOTES);
  }
  /* a request long past the limit, of valid JSON (a long id), so only its
   * length is wrong */
  size_t biglen = MAX_REQUEST + 100;
  char *big = malloc(biglen + 1);
  assert_non_null(big);
  memset(big, 'x', biglen);
  memcpy(big, "{\"id\": \"", 8);
  memcpy(big + biglen - 2, "\"}", 2);
  big[biglen] = '\0';
  char *missing_quote = request(NULL, GOOD[1][0], NULL, "{\"CASH\": 127.5, \"BOND\": 141.7}");
  char *reqs = NULL;
  assert_true(asprintf(&reqs,
                       "%s\n"                                                    /* 1 */
                       "{\"id\": 7, \"profile\": {\"age\": 10, \"horizon\": 5, \"goal\": \"travel\", "
                       "\"risk_score\": 3}, \"quotes\": %s}\n"                   /* 2: age out of range */
                       "\n"                                                      /* 3: blank */
                       "this is not JSON\n"                                      /* 4 */
                       "%s\n"                                                    /* 5 */
                       "{\"id\": 9, \"profile\": {}, \"quotes\": {}, \"extra\": 1}\n" /* 6 */
                       "[1, 2]\n"                                                /* 7 */
                       "%s\n"                                                    /* 8: a symbol not quoted */
                       "{\"profile\": {\"age\": 30}, \"quotes\": 5}\n"           /* 9 */
                       "%s\n"                                                    /* 10: too long */
                       "  \t\r\n"                                                /* 11: blank */
                       "%s\n"                                                    /* 12 */
                       "{\"profile\": {\"age\": 30, \"horizon\": 5, \"goal\": \"travel\", \"risk_score\": 3, "
                       "\"colour\": \"red\"}, \"quotes\": %s}\n"                 /* 13: unknown profile field */
                       "%s",                                                     /* 14, no newline */
                       good[0], QUOTES, good[1], missing_quote, big, good[2], QUOTES, good[3]) > 0);
  service_options o = options(3);
  int rc;
  char *out = serve_text(&o, reqs, &rc);
  assert_int_equal(rc, 0);
  json_t *lines[32];
  size_t n = parse_lines(out, lines, 32);
  assert_int_equal(n, 12);
  json_t *want[4];
  for (size_t i = 0; i < 4; i++) want[i] = keel_advise_cli(GOOD[i][0], GOOD[i][1], NULL, NULL);
  assert_advice_equal(lines[0], 1, want[0]);
  assert_int_equal(json_integer_value(json_object_get(lines[0], "id")), 100);
  assert_error(lines[1], 2, "invalid argument", "age");
  assert_int_equal(json_integer_value(json_object_get(lines[1], "id")), 7);
  assert_error(lines[2], 4, "malformed input", "request:1:");
  assert_advice_equal(lines[3], 5, want[1]);
  assert_string_equal(json_string_value(json_object_get(lines[3], "id")), "u-1");
  assert_error(lines[4], 6, "invalid argument", "unknown field 'extra'");
  assert_error(lines[5], 7, "invalid argument", "a JSON object is needed");
  assert_error(lines[6], 8, "invalid argument", "EQUITY");
  assert_error(lines[7], 9, "invalid argument", "\"quotes\" must be an object");
  assert_error(lines[8], 10, "limit reached", "longer than");
  assert_advice_equal(lines[9], 12, want[2]);
  assert_error(lines[10], 13, "invalid argument", "colour");
  assert_advice_equal(lines[11], 14, want[3]);
  assert_int_equal(json_integer_value(json_object_get(lines[11], "id")), 103);
  /* the advice is the real thing: trades priced with the costs given */
  json_t *trades = json_object_get(json_object_get(lines[0], "advice"), "trades");
  assert_true(json_array_size(trades) > 0);
  assert_true(json_number_value(json_object_get(json_object_get(lines[0], "advice"), "trade_costs")) > 1.5);
  for (size_t i = 0; i < 4; i++) json_decref(want[i]);
  for (size_t i = 0; i < n; i++) json_decref(lines[i]);
  for (size_t i = 0; i < 4; i++) free(good[i]);
  free(missing_quote);
  free(big);
  free(reqs);
  free(out);
}

/* Many requests: the same bytes out on 1 worker and on 4 (the ring wraps
 * a few times), in request order; the goal odds from a shared history
 * equal keel advise's. */
static void test_order_and_goal_odds(void **state) {
  (void)state;
  char hist[4200];
  snprintf(hist, sizeof hist, "%s", keel_test_source_path("data/samples/multi_asset.csv"));
  char *reqs = strdup("");
  size_t nreq = 24;
  for (size_t i = 0; i < nreq; i++) {
    char id[16];
    snprintf(id, sizeof id, "%zu", i);
    char *r = i % 7 == 3 ? strdup("{\"profile\": 1, \"quotes\": {}}")
              : i == 0   ? request(id, GOAL_PROFILE, GOOD[0][1], QUOTES)
                         : request(id, GOOD[i % 4][0], GOOD[i % 4][1], QUOTES);
    char *more = NULL;
    assert_true(asprintf(&more, "%s%s\n", reqs, r) > 0);
    free(reqs);
    free(r);
    reqs = more;
  }
  service_options o1 = options(1), o4 = options(4);
  o1.history = o4.history = hist;
  o1.goal_paths = o4.goal_paths = 20;
  int rc1, rc4;
  char *out1 = serve_text(&o1, reqs, &rc1);
  char *out4 = serve_text(&o4, reqs, &rc4);
  assert_int_equal(rc1, 0);
  assert_int_equal(rc4, 0);
  assert_string_equal(out1, out4);
  json_t *lines[64];
  size_t n = parse_lines(out4, lines, 64);
  assert_int_equal(n, nreq);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(json_integer_value(json_object_get(lines[i], "line")), i + 1);
    if (i % 7 == 3) assert_error(lines[i], i + 1, "invalid argument", "\"profile\" must be an object");
    else assert_int_equal(json_integer_value(json_object_get(lines[i], "id")), i);
  }
  /* the first profile has a goal amount: its odds, from the history */
  json_t *goal = json_object_get(json_object_get(lines[0], "advice"), "goal");
  assert_true(json_is_object(goal));
  assert_true(json_number_value(json_object_get(goal, "probability")) >= 0);
  assert_null(json_object_get(json_object_get(lines[1], "advice"), "goal"));
  json_t *want = keel_advise_cli(GOAL_PROFILE, GOOD[0][1], hist, "20");
  assert_advice_equal(lines[0], 1, want);
  json_decref(want);
  for (size_t i = 0; i < n; i++) json_decref(lines[i]);
  free(out1);
  free(out4);
  free(reqs);
}

/* A service on pipes, as a client would talk to it: the answer to a
 * request comes before the input ends; then the stop flag and a signal
 * that interrupts the read end it, with status 0. */
typedef struct piped {
  const service *S;
  int in;
  FILE *out;
  atomic_int finished;
  int rc;
} piped;

/* The stop flag, set by the signal handler in the serving thread (as the
 * command's handler sets it in its reading thread). */
static volatile sig_atomic_t usr1_stop;

static void on_usr1(int sig) {
  (void)sig;
  usr1_stop = 1;
}

static void *serve_thread(void *arg) {
  piped *p = arg;
  p->rc = serve(p->S, p->in, p->out, &usr1_stop);
  atomic_store(&p->finished, 1);
  return NULL;
}

static void test_interactive_and_stop(void **state) {
  (void)state;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; /* no SA_RESTART: the read is interrupted */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, &old);
  service_options o = options(2);
  service S;
  assert_int_equal(service_open(&S, &o), 0);
  int to_service[2], from_service[2];
  assert_int_equal(pipe(to_service), 0);
  assert_int_equal(pipe(from_service), 0);
  piped p = {.S = &S, .in = to_service[0], .out = fdopen(from_service[1], "w")};
  atomic_init(&p.finished, 0);
  usr1_stop = 0;
  FILE *client_out = fdopen(to_service[1], "w"), *client_in = fdopen(from_service[0], "r");
  assert_non_null(p.out);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, serve_thread, &p), 0);
  char *r = request("1", GOOD[1][0], NULL, QUOTES);
  fprintf(client_out, "%s\n", r);
  fflush(client_out);
  free(r);
  char *line = NULL;
  size_t cap = 0;
  assert_true(getline(&line, &cap, client_in) > 0); /* blocks until the answer is written */
  json_t *resp = json_loads(line, 0, NULL);
  assert_non_null(json_object_get(resp, "advice"));
  json_decref(resp);
  assert_false(atomic_load(&p.finished));
  /* stop: the signal sets the flag and interrupts the read (sent again
   * until the service ends, in case the first came just before the read) */
  for (int i = 0; i < 500 && !atomic_load(&p.finished); i++) {
    pthread_kill(th, SIGUSR1);
    usleep(10000);
  }
  assert_true(atomic_load(&p.finished));
  pthread_join(th, NULL);
  assert_int_equal(p.rc, 0);
  fclose(p.out);
  assert_int_equal(getline(&line, &cap, client_in), -1); /* nothing more, and the end */
  free(line);
  fclose(client_in);
  fclose(client_out);
  close(p.in);
  service_close(&S);
  sigaction(SIGUSR1, &old, NULL);
}

/* A write that fails (a full disk) ends the service with -1, after taking
 * every response read, so nothing waits forever and nothing leaks. */
static void test_write_error(void **state) {
  (void)state;
  FILE *full = fopen("/dev/full", "w");
  if (!full) skip();
  service_options o = options(2);
  service S;
  assert_int_equal(service_open(&S, &o), 0);
  char *reqs = strdup("");
  for (int i = 0; i < 12; i++) {
    char *r = request(NULL, GOOD[i % 4][0], GOOD[i % 4][1], QUOTES), *more = NULL;
    assert_true(asprintf(&more, "%s%s\n", reqs, r) > 0);
    free(reqs);
    free(r);
    reqs = more;
  }
  int in = text_fd(reqs);
  volatile sig_atomic_t stop = 0;
  assert_int_equal(serve(&S, in, full, &stop), -1);
  close(in);
  fclose(full);
  free(reqs);
  service_close(&S);
}

static int run_main(const char *const *args) {
  char *argv[16];
  int argc = 0;
  argv[argc++] = (char *)"advice_service";
  for (; *args; args++) argv[argc++] = (char *)*args;
  argv[argc] = NULL;
  return advice_service_main(argc, argv);
}
#define MAIN(...) run_main((const char *const[]){__VA_ARGS__, NULL})

/* The command: usage errors exit 2, a template or request file that
 * cannot be read 1, a run over only blank lines 0 with nothing written. */
static void test_command_line(void **state) {
  (void)state;
  const char *tmpl = keel_test_source_path(TEMPLATE);
  char tpath[4200];
  snprintf(tpath, sizeof tpath, "%s", tmpl);
  assert_int_equal(MAIN("-j", "0", tpath), 2);
  assert_int_equal(MAIN("-j", "65", tpath), 2);
  assert_int_equal(MAIN("-j", "1.5", tpath), 2);
  assert_int_equal(MAIN("-c", "abc", tpath), 2);
  assert_int_equal(MAIN("-f", "-1", tpath), 2);
  assert_int_equal(MAIN("-n", "5", tpath), 2);
  assert_int_equal(MAIN("-x", tpath), 2);
  assert_int_equal(MAIN("-j"), 2);
  assert_int_equal(MAIN("-j", "2"), 2); /* no template */
  assert_int_equal(MAIN(tpath, "a", "b"), 2);
  assert_int_equal(MAIN("/nonexistent/template.lua"), 1);
  assert_int_equal(MAIN(tpath, "/nonexistent/requests.jsonl"), 1);
  assert_int_equal(MAIN("-H", "/nonexistent/history.csv", tpath, "/dev/null"), 1);
  const char *blank = keel_test_tmp_path("blank.jsonl");
  assert_int_equal(keel_test_write_file(blank, "\n\n  \n", 4), 0);
  char bpath[4200];
  snprintf(bpath, sizeof bpath, "%s", blank);
  /* the template found by name in a -S folder */
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", keel_test_source_path("strategies/templates"));
  assert_int_equal(MAIN("-S", dir, "-j", "3", "standard", bpath), 0);
  assert_int_equal(MAIN("-S", "/nonexistent", "standard", bpath), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_requests_and_errors), cmocka_unit_test(test_order_and_goal_odds),
      cmocka_unit_test(test_interactive_and_stop), cmocka_unit_test(test_write_error),
      cmocka_unit_test(test_command_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
