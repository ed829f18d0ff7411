/* keel — the command-line tool.
 *
 * Usage errors print one line and exit with status 2; failures while
 * running (bad input files, I/O, infeasible settings) print keel's message
 * and exit with status 1. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/advice.h"
#include "keel/keel.h"
#include "report_cmd.h"

#define EXIT_USAGE 2

static const char *cmd_name = "keel";

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "keel: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see '%s --help')\n", cmd_name);
  return EXIT_USAGE;
}

static int fail(keel_ctx *ctx) {
  fprintf(stderr, "keel: %s\n", keel_errmsg(ctx));
  return 1;
}

#define MAX_STRATEGY_DIRS 16

/* Where Lua strategies and templates are looked up by name: --strategies
 * folders (advise), KEEL_STRATEGY_PATH (colon-separated), then the
 * installed ones. Set up once in main. */
static struct {
  const char *dirs[2 * MAX_STRATEGY_DIRS + 4];
  size_t ndirs;
  char *env;
  keel_lua_config cfg;
  keel_strategy_loader loader;
} lua_setup;

static void lua_setup_init(void) {
  size_t n = 0;
  const char *e = getenv("KEEL_STRATEGY_PATH");
  lua_setup.env = e ? strdup(e) : NULL;
  for (char *tok = lua_setup.env ? strtok(lua_setup.env, ":") : NULL; tok && n < MAX_STRATEGY_DIRS;
       tok = strtok(NULL, ":"))
    if (*tok) lua_setup.dirs[n++] = tok;
  lua_setup.dirs[n++] = KEEL_DATADIR "/strategies";
  lua_setup.dirs[n++] = KEEL_DATADIR "/strategies/templates";
  lua_setup.dirs[n] = NULL;
  lua_setup.ndirs = n;
  keel_lua_config_default(&lua_setup.cfg);
  lua_setup.cfg.paths = lua_setup.dirs;
  lua_setup.loader = keel_lua_loader(&lua_setup.cfg);
}

static const char MAIN_HELP[] =
    "keel - portfolio strategy and rebalancing\n"
    "\n"
    "Usage: keel <command> [options]\n"
    "\n"
    "Commands:\n"
    "  backtest   run a fixed-weight basket (or a run description) over price\n"
    "             history and print its metrics\n"
    "  batch      run many run descriptions (JSON lines) into a results database\n"
    "  stress     Monte Carlo stress test: the odds of an account over simulated\n"
    "             futures (percentiles, goal probability, scenarios)\n"
    "  optimize   mean-variance weights from price history\n"
    "  frontier   the efficient frontier from price history, as CSV\n"
    "  import     load a price CSV into a keel database as a named dataset\n"
    "  sample     write the bundled sample price history (seeded generator)\n"
    "  advise     run a recommendation template for a profile and holdings:\n"
    "             sub-account baskets, trades, an explanation with fees (JSON)\n"
    "  report     an HTML page of stored runs: charts and tables, no network\n"
    "  help       show help for a command: keel help backtest\n"
    "\n"
    "Options:\n"
    "  -h, --help     this help\n"
    "  -V, --version  print keel's version\n"
    "\n"
    "Each command has --help. Exit status: 0 success, 1 failure while running\n"
    "(bad input, I/O), 2 bad usage.\n";

static const char ADVISE_HELP[] =
    "Usage: keel advise --template NAME|FILE --profile FILE\n"
    "                   (--quotes FILE | --prices CSV) [options]\n"
    "\n"
    "Runs a recommendation template (strategies/templates/, docs/templates.md)\n"
    "for a user profile and prints the advice as JSON: the risk score, the\n"
    "sub-account baskets with their policies, DCA plans and stops, the trades\n"
    "from the holdings to the baskets, their costs, the yearly fund fees and a\n"
    "plain-language explanation.\n"
    "\n"
    "  --template NAME|FILE  a template file, or a name looked up in --strategies\n"
    "                        folders, KEEL_STRATEGY_PATH and the installed ones\n"
    "  --profile FILE        the profile (JSON: age, horizon, risk_score or\n"
    "                        answers, goal, initial, monthly, liquidity)\n"
    "  --holdings FILE       what is held (JSON: cash, positions); default none\n"
    "  --quotes FILE         today's prices (JSON: SYMBOL: price or\n"
    "                        {price, lot, min_trade, expense_ratio})\n"
    "  --prices CSV          or: the last price of each column of a price CSV,\n"
    "                        which is also the history for the goal odds\n"
    "  --history CSV         the price history for the goal odds (with --quotes)\n"
    "  --paths N             paths for the goal odds when the profile has a\n"
    "                        goal_amount (1000)\n"
    "  --cost-bps X          proportional cost per trade, both sides (0)\n"
    "  --fee X               fixed fee per trade (0)\n"
    "  --strategies DIR      a folder to search for templates and the modules they\n"
    "                        require (repeatable)\n"
    "  --text                print only the explanation\n";


static const char BACKTEST_HELP[] =
    "Usage: keel backtest (--prices FILE | --db FILE --dataset NAME) --weights SYM=W,...\n"
    "                     [options]\n"
    "       keel backtest (--prices FILE | --db FILE --dataset NAME) --spec RUN.json\n"
    "                     [--db FILE] [--quiet]\n"
    "\n"
    "Runs one account holding a fixed-weight basket over the price history:\n"
    "the capital is invested at the first close, rebalanced back to the\n"
    "weights at the first close of each calendar period, and marked to market\n"
    "every day. Prints the metrics; with --db the run is stored.\n"
    "\n"
    "Prices:\n"
    "  --prices FILE      price CSV (wide: date,A,B,... or long: date,symbol,price)\n"
    "  --dataset NAME     read the prices from dataset NAME of the --db database\n"
    "                     (see 'keel import')\n"
    "  --start DATE       first date to use (yyyy-mm-dd; default: the first)\n"
    "  --end DATE         last date to use (default: the last)\n"
    "\n"
    "With --spec the account comes from a run description: sub-accounts with\n"
    "their own capital, basket or strategy, schedule, bands, volatility\n"
    "target, costs, DCA plans and stop rules (docs/formats.md, \"Run\n"
    "descriptions\"); the options of the basket and policy below and --start,\n"
    "--end are then part of the description and cannot be given.\n"
    "\n"
    "  --spec FILE        the run description (JSON)\n"
    "  --opens FILE       open prices (a CSV like --prices, same dates and\n"
    "                     symbols), for a description with \"fill\": \"next_open\"\n"
    "\n"
    "Basket and policy:\n"
    "  --weights LIST     target weights, e.g. EQUITY=0.6,BOND=0.4; each >= 0,\n"
    "                     summing to at most 1 (the rest stays in cash)\n"
    "  --rebalance WHEN   daily, weekly, monthly, quarterly, yearly or never\n"
    "                     (default monthly)\n"
    "  --cost-bps BPS     proportional cost per trade in basis points (default 0)\n"
    "  --fee AMOUNT       fixed fee per trade (default 0)\n"
    "  --capital AMOUNT   starting cash (default 100000)\n"
    "  --risk-free RATE   annual risk-free rate for Sharpe and Sortino (default 0)\n"
    "\n"
    "Output:\n"
    "  --db FILE          store the run (metrics, equity curve, trades) in this\n"
    "                     SQLite database, created if needed\n"
    "  --benchmark SYM    store this asset's prices with the run as its benchmark\n"
    "                     curve (with --spec: the description's \"benchmark\")\n"
    "  --report FILE      write the run's HTML report (keel report)\n"
    "  -q, --quiet        print nothing but errors\n"
    "  -h, --help         this help\n"
    "\n"
    "Assets without a price yet hold nothing; their weight waits in cash until\n"
    "the first rebalance at which they have one (docs/backtest.md).\n";

static const char IMPORT_HELP[] =
    "Usage: keel import FILE --db DB [--name NAME]\n"
    "\n"
    "Loads a price CSV and stores it in the SQLite database DB (created if\n"
    "needed) as dataset NAME, replacing a dataset of that name.\n"
    "\n"
    "  --db DB        the keel database\n"
    "  --name NAME    dataset name (default: the file name without .csv)\n"
    "  -h, --help     this help\n";

static const char SAMPLE_HELP[] =
    "Usage: keel sample --out FILE [--seed N] [--years Y] [--start DATE]\n"
    "\n"
    "Writes a realistic multi-asset daily price history made by keel's seeded\n"
    "generator (equity, emerging equity, bonds, gold, a crypto-like asset and\n"
    "cash; fat tails, volatility clustering, a crash; see docs/sample-data.md).\n"
    "The same seed gives the same file.\n"
    "\n"
    "  --out FILE     where to write the CSV\n"
    "  --seed N       generator seed (default 2)\n"
    "  --years Y      length in years of 260 business days (default about 12)\n"
    "  --start DATE   first date, yyyy-mm-dd (default 2012-01-02)\n"
    "  -h, --help     this help\n";

static int parse_number(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

static int parse_date_arg(const char *s, keel_date *out) { return keel_date_parse(s, strlen(s), out); }

/* ---- backtest ----------------------------------------------------------- */

typedef struct bt_opts {
  const char *prices, *db, *dataset, *weights, *rebalance, *start, *end, *spec, *opens, *benchmark, *report;
  double cost_bps, fee, capital, risk_free;
  int quiet;
  const char *policy_opt; /* the first basket or policy option given (not allowed with --spec) */
} bt_opts;

/* Parses "A=0.5,B=0.3" against the panel into w (zeroed, nassets long).
 * Returns 0, or prints a usage error and returns 2. */
static int parse_weights(const char *spec, const keel_panel *p, double *w) {
  size_t na = keel_panel_nassets(p);
  char *copy = strdup(spec);
  if (!copy) return usage_error("out of memory");
  int rc = 0, any = 0;
  unsigned char *seen = calloc(na, 1);
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq || eq == tok) {
      rc = usage_error("--weights: '%s' is not SYMBOL=WEIGHT", tok);
      break;
    }
    *eq = '\0';
    size_t j;
    if (!keel_panel_find(p, tok, &j)) {
      char avail[256] = "";
      size_t o = 0;
      for (size_t k = 0; k < na && k < 8 && o < sizeof avail - 40; k++)
        o += (size_t)snprintf(avail + o, sizeof avail - o, "%s%s", k ? ", " : "", keel_panel_symbol(p, k));
      rc = usage_error("--weights: no asset '%s' in the prices (they have %s%s)", tok, avail, na > 8 ? ", ..." : "");
      break;
    }
    double v;
    if (parse_number(eq + 1, &v) || v < 0) {
      rc = usage_error("--weights: weight of %s '%s' is not a number >= 0", tok, eq + 1);
      break;
    }
    if (seen[j]) {
      rc = usage_error("--weights: %s is given twice", tok);
      break;
    }
    seen[j] = 1;
    w[j] = v;
    any = 1;
  }
  if (!rc && !any) rc = usage_error("--weights: no weights given");
  free(seen);
  free(copy);
  return rc;
}

static void print_pct(const char *label, double v) {
  if (isnan(v))
    printf("  %-22s %14s\n", label, "n/a");
  else
    printf("  %-22s %13.2f%%\n", label, 100 * v);
}

static void print_num(const char *label, double v, int decimals) {
  if (isnan(v))
    printf("  %-22s %14s\n", label, "n/a");
  else
    printf("  %-22s %14.*f\n", label, decimals, v);
}

static void print_report(const keel_panel *p, const keel_backtest_config *cfg, const keel_backtest_result *r,
                         const char *source) {
  const keel_metrics *m = keel_backtest_metrics(r);
  size_t n = keel_backtest_npoints(r);
  char d0[KEEL_DATE_BUFSIZE], d1[KEEL_DATE_BUFSIZE], a[KEEL_DATE_BUFSIZE], b[KEEL_DATE_BUFSIZE],
      c[KEEL_DATE_BUFSIZE];
  keel_date_format(keel_backtest_dates(r)[0], d0);
  keel_date_format(keel_backtest_dates(r)[n - 1], d1);
  printf("backtest of %s: %s .. %s (%zu days), %s rebalancing, %g bps + %g per trade\n", source, d0, d1, n,
         keel_calendar_name(cfg->rebalance), cfg->cost_bps, cfg->fee);
  printf("  basket:");
  for (size_t j = 0; j < keel_panel_nassets(p); j++)
    if (cfg->weights[j] > 0) printf(" %s %.4g%%", keel_panel_symbol(p, j), 100 * cfg->weights[j]);
  printf("\n");
  print_num("capital", keel_backtest_capital(r), 2);
  print_num("final value", keel_backtest_values(r)[n - 1], 2);
  print_pct("total return", m->total_return);
  print_pct("CAGR", m->cagr);
  print_pct("volatility (annual)", m->volatility);
  print_num("Sharpe", m->sharpe, 3);
  print_num("Sortino", m->sortino, 3);
  print_pct("max drawdown", m->max_drawdown);
  if (m->max_drawdown > 0) {
    keel_date_format(m->dd_peak, a);
    keel_date_format(m->dd_trough, b);
    if (m->dd_recovery != KEEL_DATE_NONE)
      keel_date_format(m->dd_recovery, c);
    else
      snprintf(c, sizeof c, "%s", "not yet");
    printf("  %-22s %s -> %s, recovered %s\n", "  peak -> trough", a, b, c);
  }
  print_num("Calmar", m->calmar, 3);
  print_pct("turnover (annual)", m->turnover);
  print_num("costs paid", m->costs_total, 2);
  print_pct("costs / average assets", m->cost_ratio);
  printf("  %-22s %14zu\n", "rebalances", keel_backtest_nrebalances(r));
  printf("  %-22s %14zu\n", "trades", keel_backtest_ntrades(r));
}

static char *params_json(const keel_panel *p, const keel_backtest_config *cfg, const char *d0, const char *d1) {
  json_t *w = json_object();
  for (size_t j = 0; j < keel_panel_nassets(p); j++)
    if (cfg->weights[j] > 0) json_object_set_new(w, keel_panel_symbol(p, j), json_real(cfg->weights[j]));
  json_t *o = json_pack("{s:o, s:s, s:f, s:f, s:f, s:f, s:s, s:s}", "weights", w, "rebalance",
                        keel_calendar_name(cfg->rebalance), "cost_bps", cfg->cost_bps, "fee", cfg->fee, "capital",
                        cfg->capital, "risk_free", cfg->risk_free, "start", d0, "end", d1);
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return s;
}

/* Stores a finished run through the record helper, as the batch runner
 * does, and writes its report. Without a database but with a report the
 * run goes to a scratch database that is removed afterwards. */
static int store_result(keel_ctx *ctx, const char *dbpath, const keel_backtest_result *r, const keel_panel *p,
                        const keel_record_meta *meta, int quiet, const char *report) {
  keel_run_record rec;
  char scratch[4096];
  if (!dbpath && cli_scratch_db(scratch, sizeof scratch)) return 1;
  const char *path = dbpath ? dbpath : scratch;
  if (keel_backtest_record_fill(ctx, r, p, meta, &rec) != KEEL_OK) return fail(ctx);
  keel_store *s = NULL;
  int64_t id = 0;
  int rc = 0;
  if (keel_store_open(ctx, path, &s) != KEEL_OK || keel_store_save_run(ctx, s, &rec, &id) != KEEL_OK)
    rc = fail(ctx);
  else if (!quiet && dbpath)
    printf("stored as run %lld in %s\n", (long long)id, dbpath);
  keel_store_close(s);
  keel_backtest_record_free(&rec);
  if (!rc && report) rc = cli_write_report(ctx, path, &id, 1, report, quiet);
  if (!dbpath) cli_scratch_db_remove(scratch);
  return rc;
}

static int store_run(keel_ctx *ctx, const char *dbpath, const keel_panel *p, const keel_backtest_config *cfg,
                     const keel_backtest_result *r, const char *dataset, int quiet, const char *benchmark,
                     const char *report) {
  size_t n = keel_backtest_npoints(r);
  char d0[KEEL_DATE_BUFSIZE], d1[KEEL_DATE_BUFSIZE];
  keel_date_format(keel_backtest_dates(r)[0], d0);
  keel_date_format(keel_backtest_dates(r)[n - 1], d1);
  char *params = params_json(p, cfg, d0, d1);
  if (!params) {
    fprintf(stderr, "keel: out of memory\n");
    return 1;
  }
  keel_record_meta meta = {.dataset = dataset, .params_json = params, .strategy = "fixed_weights",
                           .benchmark = benchmark};
  int rc = store_result(ctx, dbpath, r, p, &meta, quiet, report);
  free(params);
  return rc;
}

/* Reads a whole file (a run description, JSON), NUL-terminated; NULL with
 * a message printed. */
static char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "keel: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    char *nb = realloc(buf, cap *= 2);
    if (!nb) free(buf);
    buf = nb;
  }
  int err = ferror(f);
  fclose(f);
  if (!buf || err) {
    fprintf(stderr, "keel: %s: %s\n", path, buf ? "read error" : "out of memory");
    free(buf);
    return NULL;
  }
  char *nb = realloc(buf, n + 1); /* NUL-terminated for the JSON readers */
  if (!nb) {
    free(buf);
    fprintf(stderr, "keel: %s: out of memory\n", path);
    return NULL;
  }
  buf = nb;
  buf[n] = 0;
  *len = n;
  return buf;
}

/* Loads the prices of --prices or --db/--dataset; source names them. */
static int load_prices(keel_ctx *ctx, const bt_opts *o, keel_panel **p, char **base, const char **source) {
  if (o->prices) {
    if (keel_panel_read_csv(ctx, o->prices, NULL, p) != KEEL_OK) return fail(ctx);
    *base = strdup(o->prices);
    *source = *base ? basename(*base) : o->prices;
    return 0;
  }
  keel_store *s = NULL;
  keel_status st = keel_store_open(ctx, o->db, &s);
  if (st == KEEL_OK) st = keel_store_get_dataset(ctx, s, o->dataset, p);
  keel_store_close(s);
  if (st != KEEL_OK) return fail(ctx);
  *source = o->dataset;
  return 0;
}

static void print_metrics(const keel_metrics *m) {
  print_pct("total return", m->total_return);
  print_pct("CAGR", m->cagr);
  print_pct("volatility (annual)", m->volatility);
  print_num("Sharpe", m->sharpe, 3);
  print_num("Sortino", m->sortino, 3);
  print_pct("max drawdown", m->max_drawdown);
  print_num("Calmar", m->calmar, 3);
  print_pct("turnover (annual)", m->turnover);
  print_num("costs paid", m->costs_total, 2);
}

static void print_account_report(const keel_runspec *rs, const keel_backtest_result *r, const char *source) {
  size_t n = keel_backtest_npoints(r), ns = keel_backtest_nsubs(r);
  char d0[KEEL_DATE_BUFSIZE], d1[KEEL_DATE_BUFSIZE];
  keel_date_format(keel_backtest_dates(r)[0], d0);
  keel_date_format(keel_backtest_dates(r)[n - 1], d1);
  printf("backtest of %s: %s .. %s (%zu days), %zu sub-account%s (%s)\n", source, d0, d1, n, ns, ns == 1 ? "" : "s",
         keel_runspec_strategy(rs));
  print_num("capital", keel_backtest_capital(r), 2);
  print_num("final value", keel_backtest_values(r)[n - 1], 2);
  print_metrics(keel_backtest_metrics(r));
  printf("  %-22s %14zu\n", "rebalances", keel_backtest_nrebalances(r));
  printf("  %-22s %14zu\n", "trades", keel_backtest_ntrades(r));
  printf("  %-22s %14zu\n", "events", keel_backtest_nevents(r));
  if (ns > 1)
    for (size_t k = 0; k < ns; k++) {
      const keel_metrics *m = keel_backtest_sub_metrics(r, k);
      printf("sub-account %s: final value %.2f, CAGR %.2f%%, max drawdown %.2f%%\n", keel_backtest_sub_name(r, k),
             keel_backtest_sub_values(r, k)[n - 1], 100 * m->cagr, 100 * m->max_drawdown);
    }
}

static int backtest_spec(keel_ctx *ctx, const bt_opts *o) {
  size_t len = 0;
  char *text = read_text(o->spec, &len);
  if (!text) return 1;
  keel_panel *p = NULL;
  char *base = NULL;
  const char *source = NULL;
  keel_runspec *rs = NULL;
  keel_backtest_result *r = NULL;
  keel_panel *op = NULL;
  int rc = load_prices(ctx, o, &p, &base, &source);
  if (!rc && o->opens && keel_panel_read_csv(ctx, o->opens, NULL, &op) != KEEL_OK) rc = fail(ctx);
  if (!rc && keel_runspec_parse_with(ctx, o->spec, text, len, p, op, &lua_setup.loader, &rs) != KEEL_OK)
    rc = fail(ctx);
  if (!rc && keel_backtest_run_account(ctx, p, keel_runspec_account(rs), &r) != KEEL_OK) rc = fail(ctx);
  if (!rc && !o->quiet) print_account_report(rs, r, source);
  if (!rc && (o->db || o->report)) {
    keel_record_meta meta = {.dataset = source,
                             .params_json = keel_runspec_json(rs),
                             .strategy = keel_runspec_strategy(rs),
                             .spec = keel_runspec_account(rs),
                             .benchmark = o->benchmark};
    rc = store_result(ctx, o->db, r, p, &meta, o->quiet, o->report);
  }
  keel_backtest_result_free(r);
  keel_runspec_free(rs);
  keel_panel_free(op);
  keel_panel_free(p);
  free(base);
  free(text);
  return rc;
}

static int cmd_backtest(keel_ctx *ctx, int argc, char **argv) {
  cmd_name = "keel backtest";
  bt_opts o = {.capital = 100000, .rebalance = "monthly"};
  static const struct option longopts[] = {
      {"prices", required_argument, 0, 'p'},   {"db", required_argument, 0, 'd'},
      {"dataset", required_argument, 0, 'D'},  {"weights", required_argument, 0, 'w'},
      {"rebalance", required_argument, 0, 'r'}, {"cost-bps", required_argument, 0, 'c'},
      {"fee", required_argument, 0, 'f'},      {"capital", required_argument, 0, 'k'},
      {"risk-free", required_argument, 0, 'R'}, {"start", required_argument, 0, 's'},
      {"end", required_argument, 0, 'e'},      {"quiet", no_argument, 0, 'q'},
      {"spec", required_argument, 0, 'S'},     {"opens", required_argument, 0, 'O'},
      {"benchmark", required_argument, 0, 'B'}, {"report", required_argument, 0, 'X'},
      {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
    double *num = NULL;
    const char *what = NULL;
    if (strchr("wrsecfkR", ch) && !o.policy_opt)
      for (size_t k = 0; longopts[k].name; k++)
        if (longopts[k].val == ch) o.policy_opt = longopts[k].name;
    switch (ch) {
      case 'S': o.spec = optarg; break;
      case 'O': o.opens = optarg; break;
      case 'B': o.benchmark = optarg; break;
      case 'X': o.report = optarg; break;
      case 'p': o.prices = optarg; break;
      case 'd': o.db = optarg; break;
      case 'D': o.dataset = optarg; break;
      case 'w': o.weights = optarg; break;
      case 'r': o.rebalance = optarg; break;
      case 's': o.start = optarg; break;
      case 'e': o.end = optarg; break;
      case 'q': o.quiet = 1; break;
      case 'c': num = &o.cost_bps, what = "--cost-bps"; break;
      case 'f': num = &o.fee, what = "--fee"; break;
      case 'k': num = &o.capital, what = "--capital"; break;
      case 'R': num = &o.risk_free, what = "--risk-free"; break;
      case 'h': fputs(BACKTEST_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (num && parse_number(optarg, num)) return usage_error("%s: '%s' is not a number", what, optarg);
  }
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!o.prices && !o.dataset) return usage_error("give the prices: --prices FILE or --db FILE --dataset NAME");
  if (o.prices && o.dataset) return usage_error("--prices and --dataset cannot be used together");
  if (o.dataset && !o.db) return usage_error("--dataset needs --db FILE");
  if (o.spec && o.policy_opt)
    return usage_error("--%s cannot be used with --spec (the run description sets it)", o.policy_opt);
  if (o.opens && !o.spec) return usage_error("--opens goes with --spec (a description with \"fill\": \"next_open\")");
  if (o.spec) return backtest_spec(ctx, &o);
  if (!o.weights) return usage_error("--weights is required, e.g. --weights EQUITY=0.6,BOND=0.4");
  keel_backtest_config cfg;
  keel_backtest_config_default(&cfg);
  if (keel_calendar_parse(o.rebalance, &cfg.rebalance) != 0)
    return usage_error("--rebalance: '%s' is not one of daily, weekly, monthly, quarterly, yearly, never",
                       o.rebalance);
  if (o.cost_bps < 0 || o.cost_bps >= 10000) return usage_error("--cost-bps must be in [0, 10000)");
  if (o.fee < 0) return usage_error("--fee must be >= 0");
  if (o.capital <= 0) return usage_error("--capital must be > 0");
  keel_date dstart = 0, dend = 0;
  if (o.start && parse_date_arg(o.start, &dstart)) return usage_error("--start: '%s' is not a date yyyy-mm-dd", o.start);
  if (o.end && parse_date_arg(o.end, &dend)) return usage_error("--end: '%s' is not a date yyyy-mm-dd", o.end);

  keel_panel *p = NULL;
  const char *source;
  char *base = NULL;
  if (o.prices) {
    if (keel_panel_read_csv(ctx, o.prices, NULL, &p) != KEEL_OK) return fail(ctx);
    base = strdup(o.prices);
    source = base ? basename(base) : o.prices;
  } else {
    keel_store *s = NULL;
    keel_status st = keel_store_open(ctx, o.db, &s);
    if (st == KEEL_OK) st = keel_store_get_dataset(ctx, s, o.dataset, &p);
    keel_store_close(s);
    if (st != KEEL_OK) return fail(ctx);
    source = o.dataset;
  }
  int rc = 0;
  double *w = calloc(keel_panel_nassets(p), sizeof *w);
  keel_backtest_result *r = NULL;
  if (!w) {
    rc = usage_error("out of memory");
    goto out;
  }
  if ((rc = parse_weights(o.weights, p, w))) goto out;
  size_t bj;
  if (o.benchmark && !keel_panel_find(p, o.benchmark, &bj)) {
    rc = usage_error("--benchmark: no asset '%s' in the prices", o.benchmark);
    goto out;
  }
  cfg.weights = w;
  cfg.nweights = keel_panel_nassets(p);
  cfg.cost_bps = o.cost_bps;
  cfg.fee = o.fee;
  cfg.capital = o.capital;
  cfg.risk_free = o.risk_free;
  size_t nd = keel_panel_ndates(p);
  const keel_date *dates = keel_panel_dates(p);
  size_t i0 = 0, i1 = nd;
  if (o.start)
    while (i0 < nd && dates[i0] < dstart) i0++;
  if (o.end)
    while (i1 > 0 && dates[i1 - 1] > dend) i1--;
  if (i0 >= i1) {
    rc = usage_error("no prices between --start and --end");
    goto out;
  }
  cfg.start = i0;
  cfg.end = i1;
  if (keel_backtest_run(ctx, p, &cfg, &r) != KEEL_OK) {
    rc = fail(ctx);
    goto out;
  }
  if (!o.quiet) print_report(p, &cfg, r, source);
  if (o.db || o.report) rc = store_run(ctx, o.db, p, &cfg, r, source, o.quiet, o.benchmark, o.report);
out:
  keel_backtest_result_free(r);
  keel_panel_free(p);
  free(w);
  free(base);
  return rc;
}

/* ---- import ------------------------------------------------------------- */

static int cmd_import(keel_ctx *ctx, int argc, char **argv) {
  cmd_name = "keel import";
  const char *db = NULL, *name = NULL, *file = NULL;
  static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                           {"name", required_argument, 0, 'n'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (ch) {
      case 'd': db = optarg; break;
      case 'n': name = optarg; break;
      case 'h': fputs(IMPORT_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) file = argv[optind++];
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!file) return usage_error("give the CSV file to import");
  if (!db) return usage_error("--db is required");
  char namebuf[256];
  if (!name) {
    char *copy = strdup(file);
    if (!copy) return usage_error("out of memory");
    snprintf(namebuf, sizeof namebuf, "%s", basename(copy));
    free(copy);
    size_t l = strlen(namebuf);
    if (l > 4 && strcmp(namebuf + l - 4, ".csv") == 0) namebuf[l - 4] = '\0';
    name = namebuf;
  }
  if (!*name) return usage_error("--name must not be empty");
  keel_panel *p = NULL;
  if (keel_panel_read_csv(ctx, file, NULL, &p) != KEEL_OK) return fail(ctx);
  keel_store *s = NULL;
  int rc = 0;
  if (keel_store_open(ctx, db, &s) != KEEL_OK || keel_store_put_dataset(ctx, s, name, p) != KEEL_OK) {
    rc = fail(ctx);
  } else {
    char d0[KEEL_DATE_BUFSIZE], d1[KEEL_DATE_BUFSIZE];
    keel_date_format(keel_panel_dates(p)[0], d0);
    keel_date_format(keel_panel_dates(p)[keel_panel_ndates(p) - 1], d1);
    printf("imported %s as dataset '%s' into %s: %zu dates x %zu assets, %s .. %s\n", file, name, db,
           keel_panel_ndates(p), keel_panel_nassets(p), d0, d1);
  }
  keel_store_close(s);
  keel_panel_free(p);
  return rc;
}

/* ---- sample ------------------------------------------------------------- */

static int cmd_sample(keel_ctx *ctx, int argc, char **argv) {
  cmd_name = "keel sample";
  const char *outp = NULL;
  keel_sample_config cfg;
  keel_sample_config_default(&cfg);
  static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                           {"seed", required_argument, 0, 's'},
                                           {"years", required_argument, 0, 'y'},
                                           {"start", required_argument, 0, 'S'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    double v;
    switch (ch) {
      case 'o': outp = optarg; break;
      case 's':
        if (parse_number(optarg, &v) || v < 0 || v != floor(v) || v > 1e15)
          return usage_error("--seed: '%s' is not a whole number >= 0", optarg);
        cfg.seed = (uint64_t)v;
        break;
      case 'y':
        if (parse_number(optarg, &v) || v < 1 || v > 300) return usage_error("--years: '%s' is not in [1, 300]", optarg);
        cfg.ndays = (int)(v * 260);
        if (cfg.crash_day + cfg.crash_days > cfg.ndays) cfg.crash_day = cfg.ndays * 2 / 3;
        if (cfg.crash_day + cfg.crash_days > cfg.ndays) cfg.crash_day = 0;
        break;
      case 'S':
        if (parse_date_arg(optarg, &cfg.start)) return usage_error("--start: '%s' is not a date yyyy-mm-dd", optarg);
        break;
      case 'h': fputs(SAMPLE_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!outp) return usage_error("--out FILE is required");
  keel_panel *p = NULL;
  if (keel_sample_generate(ctx, &cfg, &p) != KEEL_OK) return fail(ctx);
  int rc = keel_panel_write_csv(ctx, p, outp) != KEEL_OK ? fail(ctx) : 0;
  keel_panel_free(p);
  return rc;
}

/* ---- batch ------------------------------------------------------------- */

static const char BATCH_HELP[] =
    "Usage: keel batch JOBS.jsonl|- --db RESULTS.db [--threads N] [--jsonl] [--quiet]\n"
    "                  [--datasets DB]\n"
    "\n"
    "Runs every job of JOBS.jsonl (- reads standard input), one JSON object a\n"
    "line: {\"id\": \"label\", \"dataset\": \"prices.csv\" or \"db:NAME\", \"run\": {a\n"
    "run description as for backtest --spec}}, and stores each run, with its\n"
    "metrics, equity curves, trades and events, in the SQLite database\n"
    "RESULTS.db, one transaction per run. Jobs already stored (by the hash of\n"
    "the job and its prices) are skipped, so an interrupted batch is resumed by\n"
    "running the same command again. A job that fails is stored with status\n"
    "'error' and its message, and the batch goes on; it is not run again on\n"
    "resume (delete the error rows to retry them: docs/formats.md).\n"
    "\n"
    "  --db FILE          the results database, created if needed\n"
    "  --datasets DB      where \"db:NAME\" datasets are read (default: --db)\n"
    "  --threads N        worker threads (default 1)\n"
    "  --report FILE      write one HTML page comparing the runs this call made\n"
    "                     (keel report)\n"
    "  --jsonl            write one JSON line per finished job to standard output:\n"
    "                     id, line, hash, status, run_id, metrics or error\n"
    "  -q, --quiet        no progress bar, summary or job errors on stderr\n"
    "  -h, --help         this help\n"
    "\n"
    "A progress bar with the time left is drawn on standard error when it is a\n"
    "terminal. Exit status: 0 when every job ran (or was already stored), 1 when\n"
    "a job failed or the batch could not go on, 2 bad usage.\n";

typedef struct batch_cli {
  int bar, quiet, jsonl;
  double last_draw;
  int64_t *ids; /* the runs stored without error, for --report */
  size_t nids, capids;
  int oom;
} batch_cli;

static double wall_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A progress bar on stderr (a terminal): at most ten redraws a second,
 * and the last one. eta < 0: unknown. */
static void draw_bar(double *last_draw, size_t done, size_t total, double eta, const char *what) {
  double now = wall_seconds();
  if (done < total && now - *last_draw < 0.1) return;
  *last_draw = now;
  enum { WIDTH = 30 };
  size_t fill = total ? done * WIDTH / total : WIDTH;
  char bar[WIDTH + 1];
  for (size_t k = 0; k < WIDTH; k++) bar[k] = k < fill ? '#' : '.';
  bar[WIDTH] = '\0';
  char left[32] = "--:--";
  if (eta >= 0) {
    long t = (long)(eta + 0.5);
    if (t >= 3600)
      snprintf(left, sizeof left, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
      snprintf(left, sizeof left, "%02ld:%02ld", t / 60, t % 60);
  }
  fprintf(stderr, "\r[%s] %zu/%zu %s, %s left ", bar, done, total, what, left);
  if (done == total) fputc('\n', stderr);
  fflush(stderr);
}

static void batch_progress(void *ud, size_t done, size_t total, double eta) {
  batch_cli *c = ud;
  if (c->bar) draw_bar(&c->last_draw, done, total, eta, "jobs");
}

static void batch_result(void *ud, const char *line) {
  batch_cli *c = ud;
  if (c->jsonl) {
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
  if (!c->quiet && !c->jsonl) {
    /* without --jsonl, failed jobs are told on stderr */
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    const char *err = o ? json_string_value(json_object_get(o, "error")) : NULL;
    if (err) {
      if (c->bar) fputc('\n', stderr);
      fprintf(stderr, "keel: %s\n", err);
    }
    json_decref(o);
  }
  if (c->capids) { /* --report: the runs stored */
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    json_t *id = o ? json_object_get(o, "run_id") : NULL;
    const char *stt = o ? json_string_value(json_object_get(o, "status")) : NULL;
    if (json_is_integer(id) && stt && !strcmp(stt, "ok")) {
      if (c->nids == c->capids) {
        size_t nc = c->capids ? 2 * c->capids : 64;
        int64_t *ni = realloc(c->ids, nc * sizeof *ni);
        if (ni) c->ids = ni, c->capids = nc;
        else c->oom = 1;
      }
      if (c->nids < c->capids) c->ids[c->nids++] = (int64_t)json_integer_value(id);
    }
    json_decref(o);
  }
}

static int cmd_batch(keel_ctx *ctx, int argc, char **argv) {
  cmd_name = "keel batch";
  const char *db = NULL, *datasets = NULL, *file = NULL, *report = NULL;
  double threads = 1;
  batch_cli c = {0};
  static const struct option longopts[] = {{"db", required_argument, 0, 'd'},
                                           {"report", required_argument, 0, 'r'},
                                           {"datasets", required_argument, 0, 'D'},
                                           {"threads", required_argument, 0, 't'},
                                           {"jsonl", no_argument, 0, 'j'},
                                           {"quiet", no_argument, 0, 'q'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
    switch (ch) {
      case 'd': db = optarg; break;
      case 'D': datasets = optarg; break;
      case 't':
        if (parse_number(optarg, &threads) || threads < 1 || threads > 1024 || threads != floor(threads))
          return usage_error("--threads: '%s' is not a whole number from 1 to 1024", optarg);
        break;
      case 'j': c.jsonl = 1; break;
      case 'q': c.quiet = 1; break;
      case 'r': report = optarg; break;
      case 'h': fputs(BATCH_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) file = argv[optind++];
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!file) return usage_error("give the jobs file (JSON lines), or - for standard input");
  if (!db) return usage_error("--db is required");
  FILE *in = strcmp(file, "-") ? fopen(file, "r") : stdin;
  if (!in) {
    fprintf(stderr, "keel: %s: %s\n", file, strerror(errno));
    return 1;
  }
  c.bar = !c.quiet && isatty(STDERR_FILENO);
  keel_batch_options bo;
  keel_batch_options_default(&bo);
  bo.loader = &lua_setup.loader;
  bo.input = in;
  bo.input_name = strcmp(file, "-") ? file : "stdin";
  bo.store_path = db;
  bo.datasets_path = datasets;
  bo.threads = (int)threads;
  bo.progress = batch_progress;
  bo.progress_ud = &c;
  bo.on_result = batch_result;
  bo.result_ud = &c;
  keel_batch_summary sum;
  if (report && !(c.ids = malloc(64 * sizeof *c.ids))) {
    if (in != stdin) fclose(in);
    return usage_error("out of memory");
  }
  if (report) c.capids = 64;
  keel_status st = keel_batch_run(ctx, &bo, &sum);
  if (in != stdin) fclose(in);
  if (st != KEEL_OK) {
    if (c.bar) fputc('\n', stderr);
    free(c.ids);
    return fail(ctx);
  }
  if (!c.quiet)
    fprintf(stderr, "keel: %zu jobs: %zu ran, %zu failed, %zu already stored, in %.1f s\n", sum.total, sum.ok,
            sum.failed, sum.skipped, sum.seconds);
  int rc = sum.failed ? 1 : 0;
  if (report) {
    if (c.oom) {
      fprintf(stderr, "keel: report: out of memory\n");
      rc = 1;
    } else if (!c.nids) {
      fprintf(stderr, "keel: report: this call stored no run to report on (%zu already stored)\n", sum.skipped);
      rc = 1;
    } else if (cli_write_report(ctx, db, c.ids, c.nids, report, c.quiet)) {
      rc = 1;
    }
  }
  free(c.ids);
  return rc;
}

static const char OPTIMIZE_HELP[] =
    "Usage: keel optimize --prices FILE [options]\n"
    "       keel frontier --prices FILE --csv OUT [--points N] [options]\n"
    "\n"
    "Estimates annualised (252 periods) expected returns (arithmetic mean) and\n"
    "a covariance from the simple returns of the prices' common window, then\n"
    "optimise prints the weights, expected return, volatility, Sharpe ratio\n"
    "and turnover; frontier writes N points (return, volatility, weights).\n"
    "\n"
    "  --objective NAME   min_variance (default), max_sharpe, utility,\n"
    "                     target_return, target_vol\n"
    "  --cov NAME         sample (default), ewma, ledoit_wolf (towards a scaled\n"
    "                     identity), ledoit_wolf_cc (constant correlation),\n"
    "                     pca (a factor model by principal components)\n"
    "  --factors K        principal components of --cov pca (default 3)\n"
    "  --halflife N       EWMA half-life in periods (default 60)\n"
    "  --risk-free R      annual risk-free rate (default 0)\n"
    "  --gamma G          risk aversion of the utility (default 1)\n"
    "  --target-return R  --target-vol V   annual targets\n"
    "  --current LIST     current weights SYM=W,... (for costs and turnover)\n"
    "  --cost-bps B       proportional cost per trade, basis points (utility,\n"
    "                     target_vol)\n"
    "  --max-weight W     upper bound on every weight (default 1)\n"
    "  --group NAME=SYM,SYM:LO:HI   a group bound (repeatable), e.g.\n"
    "                     --group crypto=BTC,ETH:0:0.2\n"
    "  --turnover T       cap on sum |w - current|\n"
    "  --cash             allow cash (earning the risk-free rate)\n"
    "  --repair           repair a covariance that is not PSD instead of failing\n"
    "  --points N         frontier points (default 50)\n"
    "  --csv FILE         frontier output\n"
    "  --db FILE          store the run (the portfolio, each asset's return,\n"
    "                     volatility and risk contribution, the frontier)\n"
    "  --report FILE      write the run's HTML report (keel report): the\n"
    "                     frontier with the assets, the chosen and the current\n"
    "                     portfolio, weights and risk contributions\n";

#define MAX_GROUPS 32
typedef struct opt_opts {
  const char *prices, *objective, *cov, *current, *csv, *db, *report;
  const char *groups[MAX_GROUPS];
  size_t ngroups;
  double halflife, risk_free, gamma, target_return, target_vol, cost_bps, max_weight, turnover, points, factors;
  int cash, repair;
} opt_opts;

/* "NAME=SYM,SYM:LO:HI" -> a group over the panel's assets (idx is filled). */
static int parse_group(const char *spec, const keel_panel *p, keel_group *g, size_t *idx, char *namebuf, size_t nb) {
  const char *eq = strchr(spec, '=');
  const char *c2 = strrchr(spec, ':');
  const char *c1 = NULL;
  for (const char *t = spec; t && c2 && t < c2; t++)
    if (*t == ':') c1 = t;
  if (!eq || !c1 || !c2 || eq > c1 || (size_t)(eq - spec) >= nb || eq == spec)
    return usage_error("--group: '%s' is not NAME=SYM,SYM:LO:HI", spec);
  memcpy(namebuf, spec, (size_t)(eq - spec));
  namebuf[eq - spec] = '\0';
  char lo[64], hi[64], list[4096];
  if ((size_t)(c2 - c1) >= sizeof lo || strlen(c2) >= sizeof hi || (size_t)(c1 - eq) >= sizeof list)
    return usage_error("--group: '%s' is too long", spec);
  memcpy(lo, c1 + 1, (size_t)(c2 - c1 - 1)), lo[c2 - c1 - 1] = '\0';
  strcpy(hi, c2 + 1);
  memcpy(list, eq + 1, (size_t)(c1 - eq - 1)), list[c1 - eq - 1] = '\0';
  if (parse_number(lo, &g->lo) || parse_number(hi, &g->hi))
    return usage_error("--group %s: bounds '%s' and '%s' must be numbers", namebuf, lo, hi);
  size_t cnt = 0;
  for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    size_t j;
    if (!keel_panel_find(p, tok, &j)) return usage_error("--group %s: no asset '%s' in the prices", namebuf, tok);
    idx[cnt++] = j;
  }
  if (!cnt) return usage_error("--group %s: no assets", namebuf);
  g->name = namebuf, g->assets = idx, g->count = cnt;
  return 0;
}

/* Stores an optimisation with its frontier (keel_store_save_optimization)
 * and writes its report: the objective's portfolio (for frontier too),
 * each asset's return, volatility and risk contribution, the frontier. */
static int store_optimization(keel_ctx *ctx, const opt_opts *o, const keel_panel *p, int frontier, const double *mu,
                              keel_cmat cov, const keel_factor_model *fm, const keel_mv_spec *spec,
                              const double *current) {
  const size_t n = keel_panel_nassets(p), np = (size_t)o->points;
  double *w = calloc(n, sizeof *w), *avol = calloc(n, sizeof *avol), *rc = calloc(n, sizeof *rc),
         *e = calloc(n, sizeof *e), *tmp = calloc(n, sizeof *tmp), *fr = calloc(np, sizeof *fr),
         *fv = calloc(np, sizeof *fv), *fw = calloc(np * n, sizeof *fw);
  const char **syms = calloc(n, sizeof *syms);
  int rc_ = 0;
  keel_mv_result r;
  if (!w || !avol || !rc || !e || !tmp || !fr || !fv || !fw || !syms) {
    rc_ = usage_error("out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) syms[i] = keel_panel_symbol(p, i);
  if (keel_mv_optimize(ctx, n, mu, cov, fm, spec, w, &r) || keel_mv_risk_contributions(ctx, n, cov, fm, w, rc, NULL) ||
      keel_mv_frontier(ctx, n, mu, cov, fm, spec, np, fr, fv, keel_mat_view(fw, np, n))) {
    rc_ = fail(ctx);
    goto done;
  }
  for (size_t i = 0; i < n; i++) { /* each asset alone */
    memset(e, 0, n * sizeof *e);
    e[i] = 1;
    if (keel_mv_risk_contributions(ctx, n, cov, fm, e, tmp, &avol[i])) {
      rc_ = fail(ctx);
      goto done;
    }
  }
  double cret = NAN, cvol = NAN;
  if (current) {
    cret = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) cret += mu[i] * current[i], sum += current[i];
    cret += o->risk_free * (1 - sum);
    if (keel_mv_risk_contributions(ctx, n, cov, fm, current, tmp, &cvol)) {
      rc_ = fail(ctx);
      goto done;
    }
  }
  char d0[KEEL_DATE_BUFSIZE], d1[KEEL_DATE_BUFSIZE];
  const keel_date *dates = keel_panel_dates(p);
  keel_date_format(dates[0], d0);
  keel_date_format(dates[keel_panel_ndates(p) - 1], d1);
  json_t *pj = json_pack("{s:s,s:s,s:f,s:f,s:f,s:f,s:b,s:I}", "objective", o->objective, "cov", o->cov, "risk_free",
                         o->risk_free, "gamma", o->gamma, "cost_bps", o->cost_bps, "max_weight", o->max_weight, "cash",
                         o->cash, "points", (json_int_t)np);
  if (pj && isfinite(o->target_return)) json_object_set_new(pj, "target_return", json_real(o->target_return));
  if (pj && isfinite(o->target_vol)) json_object_set_new(pj, "target_vol", json_real(o->target_vol));
  if (pj && isfinite(o->turnover)) json_object_set_new(pj, "turnover", json_real(o->turnover));
  if (pj && o->current) json_object_set_new(pj, "current", json_string(o->current));
  char *pjs = pj ? json_dumps(pj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(pj);
  char hash[KEEL_PANEL_HASH_BUFSIZE], *base = strdup(o->prices);
  keel_panel_hash(p, hash);
  keel_optimization_record rec = {.kind = frontier ? "frontier" : "optimize",
                                  .objective = o->objective,
                                  .cov = o->cov,
                                  .params_json = pjs ? pjs : "{}",
                                  .dataset = base ? basename(base) : o->prices,
                                  .dataset_hash = hash,
                                  .start = dates[0],
                                  .end = dates[keel_panel_ndates(p) - 1],
                                  .risk_free = o->risk_free,
                                  .nassets = n,
                                  .symbols = syms,
                                  .mu = mu,
                                  .vol = avol,
                                  .weights = w,
                                  .current = current,
                                  .risk_contrib = rc,
                                  .ret = r.ret,
                                  .vol_p = r.vol,
                                  .sharpe = r.sharpe,
                                  .turnover = r.turnover,
                                  .cost = r.cost,
                                  .cash = r.cash,
                                  .current_ret = cret,
                                  .current_vol = cvol,
                                  .npoints = np,
                                  .frontier_ret = fr,
                                  .frontier_vol = fv,
                                  .frontier_weights = fw};
  char scratch[4096];
  const char *path = o->db;
  if (!path && !(rc_ = cli_scratch_db(scratch, sizeof scratch))) path = scratch;
  keel_store *st = NULL;
  int64_t id = 0;
  if (!rc_ && (keel_store_open(ctx, path, &st) || keel_store_save_optimization(ctx, st, &rec, &id))) rc_ = fail(ctx);
  keel_store_close(st);
  if (!rc_ && o->db) printf("stored as run %lld in %s\n", (long long)id, o->db);
  if (!rc_ && o->report) rc_ = cli_write_report(ctx, path, &id, 1, o->report, 0);
  if (path && !o->db) cli_scratch_db_remove(scratch);
  free(pjs);
  free(base);
done:
  free(w), free(avol), free(rc), free(e), free(tmp), free(fr), free(fv), free(fw), free(syms);
  return rc_;
}

static int cmd_optimize_common(keel_ctx *ctx, int argc, char **argv, int frontier) {
  cmd_name = frontier ? "keel frontier" : "keel optimize";
  opt_opts o = {.objective = "min_variance", .cov = "sample", .halflife = 60, .gamma = 1, .max_weight = 1,
                .turnover = INFINITY, .points = 50, .target_return = NAN, .target_vol = NAN, .factors = 3};
  static const struct option longopts[] = {
      {"prices", required_argument, 0, 'p'},        {"objective", required_argument, 0, 'o'},
      {"cov", required_argument, 0, 'c'},           {"halflife", required_argument, 0, 'H'},
      {"risk-free", required_argument, 0, 'R'},     {"gamma", required_argument, 0, 'g'},
      {"target-return", required_argument, 0, 't'}, {"target-vol", required_argument, 0, 'v'},
      {"current", required_argument, 0, 'w'},       {"cost-bps", required_argument, 0, 'b'},
      {"max-weight", required_argument, 0, 'm'},    {"group", required_argument, 0, 'G'},
      {"turnover", required_argument, 0, 'T'},      {"cash", no_argument, 0, 'C'},
      {"repair", no_argument, 0, 'P'},              {"points", required_argument, 0, 'n'},
      {"csv", required_argument, 0, 'x'},           {"factors", required_argument, 0, 'k'},
      {"db", required_argument, 0, 'd'},            {"report", required_argument, 0, 'X'},
      {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    double *num = NULL;
    const char *what = argv[optind - 1];
    switch (ch) {
      case 'p': o.prices = optarg; break;
      case 'o': o.objective = optarg; break;
      case 'c': o.cov = optarg; break;
      case 'w': o.current = optarg; break;
      case 'x': o.csv = optarg; break;
      case 'd': o.db = optarg; break;
      case 'X': o.report = optarg; break;
      case 'C': o.cash = 1; break;
      case 'P': o.repair = 1; break;
      case 'G':
        if (o.ngroups == MAX_GROUPS) return usage_error("at most %d groups", MAX_GROUPS);
        o.groups[o.ngroups++] = optarg;
        break;
      case 'H': num = &o.halflife; break;
      case 'R': num = &o.risk_free; break;
      case 'g': num = &o.gamma; break;
      case 't': num = &o.target_return; break;
      case 'v': num = &o.target_vol; break;
      case 'b': num = &o.cost_bps; break;
      case 'm': num = &o.max_weight; break;
      case 'T': num = &o.turnover; break;
      case 'n': num = &o.points; break;
      case 'k': num = &o.factors; break;
      case 'h': fputs(OPTIMIZE_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (num && parse_number(optarg, num)) return usage_error("%s: '%s' is not a number", what, optarg);
  }
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!o.prices) return usage_error("--prices FILE is required");
  int obj = keel_objective_parse(o.objective);
  if (obj < 0)
    return usage_error("--objective: '%s' is not one of min_variance, max_sharpe, utility, target_return, target_vol",
                       o.objective);
  keel_cov_kind ck = KEEL_COV_SAMPLE;
  const int pca = !strcmp(o.cov, "pca");
  if (pca) {
    if (!(o.factors >= 1 && o.factors <= 10000 && o.factors == floor(o.factors)))
      return usage_error("--factors must be a whole number from 1 to 10000");
  } else if (!strcmp(o.cov, "sample")) ck = KEEL_COV_SAMPLE;
  else if (!strcmp(o.cov, "ewma")) ck = KEEL_COV_EWMA;
  else if (!strcmp(o.cov, "ledoit_wolf")) ck = KEEL_COV_LW_IDENTITY;
  else if (!strcmp(o.cov, "ledoit_wolf_cc")) ck = KEEL_COV_LW_CONSTCORR;
  else return usage_error("--cov: '%s' is not one of sample, ewma, ledoit_wolf, ledoit_wolf_cc, pca", o.cov);
  if (obj == KEEL_OBJ_TARGET_RETURN && isnan(o.target_return)) return usage_error("target_return needs --target-return");
  if (obj == KEEL_OBJ_TARGET_VOL && isnan(o.target_vol)) return usage_error("target_vol needs --target-vol");
  if (o.cost_bps < 0 || o.cost_bps >= 10000) return usage_error("--cost-bps must be in [0, 10000)");
  if (!(o.max_weight > 0)) return usage_error("--max-weight must be > 0");
  if (frontier && !o.csv) return usage_error("--csv FILE is required");
  if ((frontier || o.db || o.report) && (o.points < 2 || o.points > 100000 || o.points != floor(o.points)))
    return usage_error("--points must be a whole number from 2 to 100000");
  keel_panel *p = NULL;
  if (keel_panel_read_csv(ctx, o.prices, NULL, &p) != KEEL_OK) return fail(ctx);
  size_t T = keel_panel_ndates(p) - 1, n = keel_panel_nassets(p);
  int rc = 0;
  /* the covariance: dense S, or for pca the factor model in S (B | F) and fd */
  const size_t K = pca ? (size_t)o.factors : 0, ns = pca ? n * K + K * K : n * n;
  double *R = calloc(T ? T * n : 1, sizeof *R), *mu = calloc(n, sizeof *mu), *S = calloc(ns ? ns : 1, sizeof *S);
  double *fd = calloc(n, sizeof *fd);
  double *w = calloc(n, sizeof *w), *w0 = calloc(n, sizeof *w0), *ub = calloc(n, sizeof *ub);
  double *cb = calloc(n, sizeof *cb);
  size_t *gidx = calloc(MAX_GROUPS * n, sizeof *gidx);
  keel_group groups[MAX_GROUPS];
  char gnames[MAX_GROUPS][64];
  if (!R || !mu || !S || !fd || !w || !w0 || !ub || !cb || !gidx) rc = usage_error("out of memory");
  if (!rc && T < 2) rc = (fprintf(stderr, "keel: %s: need at least 3 dates\n", o.prices), 1);
  if (!rc && keel_returns(ctx, p, 0, 0, KEEL_RETURNS_SIMPLE, keel_mat_view(R, T, n))) rc = fail(ctx);
  keel_mean_options mo;
  keel_mean_options_default(&mo);
  mo.periods_per_year = 252;
  keel_cov_options co;
  keel_cov_options_default(&co);
  co.kind = ck, co.halflife = o.halflife, co.periods_per_year = 252;
  keel_cov_info ci;
  if (!rc && keel_mean(ctx, keel_cmat_view(R, T, n), &mo, mu)) rc = fail(ctx);
  keel_factor_model fm = {K, keel_cmat_view(S, n, K), keel_cmat_view(S + n * K, K, K), fd}, *fmp = pca ? &fm : NULL;
  keel_cmat cov = pca ? keel_cmat_view(NULL, 0, 0) : keel_cmat_view(S, n, n);
  keel_pca_info pi = {NAN, 0};
  if (!rc && pca &&
      keel_factor_pca(ctx, keel_cmat_view(R, T, n), K, 252, keel_mat_view(S, n, K), keel_mat_view(S + n * K, K, K),
                      fd, &pi))
    rc = fail(ctx);
  if (!rc && !pca && keel_cov(ctx, keel_cmat_view(R, T, n), &co, keel_mat_view(S, n, n), &ci)) rc = fail(ctx);
  if (!rc && o.current) rc = parse_weights(o.current, p, w0);
  for (size_t g = 0; !rc && g < o.ngroups; g++)
    rc = parse_group(o.groups[g], p, &groups[g], gidx + g * n, gnames[g], sizeof gnames[g]);
  keel_mv_spec s;
  keel_mv_spec_default(&s);
  s.objective = (keel_objective)obj, s.risk_free = o.risk_free, s.gamma = o.gamma;
  s.target_return = o.target_return, s.target_vol = o.target_vol, s.cash = o.cash;
  s.psd = o.repair ? KEEL_PSD_REPAIR : KEEL_PSD_REJECT, s.turnover_cap = o.turnover;
  s.groups = groups, s.ngroups = o.ngroups, s.ub = ub;
  for (size_t i = 0; i < n; i++) ub[i] = o.max_weight, cb[i] = o.cost_bps * 1e-4;
  if (o.current || o.turnover < INFINITY) s.w0 = w0;
  if (o.cost_bps > 0) s.cost_buy = s.cost_sell = cb;
  keel_mv_result r;
  if (!rc && !frontier) {
    if (keel_mv_optimize(ctx, n, mu, cov, fmp, &s, w, &r)) {
      rc = fail(ctx);
    } else {
      printf("objective          %s (covariance %s%s)\n", keel_objective_name(s.objective), o.cov,
             r.ill_conditioned ? ", ill-conditioned" : "");
      for (size_t i = 0; i < n; i++)
        if (fabs(w[i]) > 5e-7) printf("  %-16s %9.4f%%\n", keel_panel_symbol(p, i), 100 * w[i]);
      if (o.cash) printf("  %-16s %9.4f%%\n", "(cash)", 100 * r.cash);
      printf("expected return    %.4f%%\nvolatility         %.4f%%\nSharpe ratio       %.4f\n", 100 * r.ret,
             100 * r.vol, r.sharpe);
      printf("turnover           %.4f%%\ncosts              %.4f%%\n", 100 * r.turnover, 100 * r.cost);
      if (pca)
        printf("factors            %zu, explaining %.2f%% of the variance\n", K, 100 * pi.explained);
      else
        printf("condition number   %.3g\n", r.condition);
    }
  } else if (!rc) {
    size_t np = (size_t)o.points;
    double *ret = calloc(np, sizeof *ret), *vol = calloc(np, sizeof *vol), *W = calloc(np * n, sizeof *W);
    if (!ret || !vol || !W) {
      rc = usage_error("out of memory");
    } else if (keel_mv_frontier(ctx, n, mu, cov, fmp, &s, np, ret, vol, keel_mat_view(W, np, n))) {
      rc = fail(ctx);
    } else {
      /* point, return, volatility, Sharpe, then the weights */
      size_t nc = 4 + n;
      const char **names = calloc(nc, sizeof *names);
      double *tab = calloc(np * nc, sizeof *tab);
      if (!names || !tab) {
        rc = usage_error("out of memory");
      } else {
        names[0] = "point", names[1] = "return", names[2] = "volatility", names[3] = "sharpe";
        for (size_t i = 0; i < n; i++) names[4 + i] = keel_panel_symbol(p, i);
        for (size_t k = 0; k < np; k++) {
          double *row = tab + k * nc;
          row[0] = (double)k, row[1] = ret[k], row[2] = vol[k];
          row[3] = vol[k] > 0 ? (ret[k] - o.risk_free) / vol[k] : NAN;
          memcpy(row + 4, W + k * n, n * sizeof *row);
        }
        if (keel_table_write_csv(ctx, o.csv, nc, names, np, tab))
          rc = fail(ctx);
        else
          printf("wrote %zu frontier points to %s (return %.4f%% .. %.4f%%, volatility %.4f%% .. %.4f%%)\n", np, o.csv,
                 100 * ret[0], 100 * ret[np - 1], 100 * vol[0], 100 * vol[np - 1]);
      }
      free(names), free(tab);
    }
    free(ret), free(vol), free(W);
  }
  if (!rc && (o.db || o.report)) rc = store_optimization(ctx, &o, p, frontier, mu, cov, fmp, &s, o.current ? w0 : NULL);
  free(R), free(mu), free(S), free(fd), free(w), free(w0), free(ub), free(cb), free(gidx);
  keel_panel_free(p);
  return rc;
}

static int cmd_optimize(keel_ctx *ctx, int argc, char **argv) { return cmd_optimize_common(ctx, argc, argv, 0); }
static int cmd_frontier(keel_ctx *ctx, int argc, char **argv) { return cmd_optimize_common(ctx, argc, argv, 1); }

/* ---- stress -------------------------------------------------------------- */

static const char STRESS_HELP[] =
    "Usage: keel stress (--prices FILE | --db FILE --dataset NAME) [options]\n"
    "\n"
    "Plays an account through many simulated futures (Monte Carlo paths made\n"
    "from the price history) with the same engine as backtests, and prints the\n"
    "distribution of the outcome: terminal wealth percentiles, CAGR, max\n"
    "drawdown, time under water, the chance of reaching --goal and of losing\n"
    "more than --loss, and the expected shortfall. docs/stress.md has the\n"
    "details.\n"
    "\n"
    "The account (one of):\n"
    "  --strategy NAME    a built-in strategy: equal, inverse_vol, min_variance,\n"
    "                     max_sharpe, risk_parity (default equal)\n"
    "  --weights LIST     a fixed basket, e.g. EQUITY=0.6,BOND=0.4\n"
    "  --spec FILE        a run description (JSON, as for backtest --spec)\n"
    "  --capital AMOUNT   starting cash (default 100000)\n"
    "  --contribution A   paid in on the first day of each month (< 0 withdraws)\n"
    "  --rebalance WHEN   daily, weekly, monthly, quarterly, yearly, never\n"
    "                     (default quarterly)\n"
    "  --band ABS         rebalance only when a weight is ABS away from target\n"
    "                     (e.g. 0.05), checked every step\n"
    "  --cost-bps BPS     proportional cost per trade (default 10)\n"
    "\n"
    "The paths:\n"
    "  --generator KIND   bootstrap (default), normal, student_t, regime, constant\n"
    "  --paths N          number of paths (default 10000)\n"
    "  --years Y          horizon (default 30)\n"
    "  --steps daily|monthly  step size (default monthly)\n"
    "  --seed N           random stream seed (default 1); the same seed gives the\n"
    "                     same answer on any number of threads\n"
    "  --threads N        worker threads (default: the CPUs)\n"
    "  --dof NU           Student-t degrees of freedom (default 5)\n"
    "  --block STEPS      bootstrap mean block length (default 21 daily, 6 monthly)\n"
    "  --states K         regime-switching states (default 2)\n"
    "  --scenario TEXT    overlays, ';'-separated, e.g. crash:equity:-0.4@5y,\n"
    "                     vol:all:2@10y/1y, corr:all:0.8@5y/1y, worst:20d@3y,\n"
    "                     liquidity:all:cost=3,spread=5,halt=5d@5y/3m\n"
    "  --scenario-file F  overlays from a JSON file\n"
    "  --group NAME=TARGET  a named group of assets for scenarios (NAME=A+B, *EQ*)\n"
    "\n"
    "Output:\n"
    "  --goal AMOUNT      the chance of ending with at least AMOUNT\n"
    "  --loss X           the chance of losing more than X (default 0.2)\n"
    "  --fan FILE         write the fan chart (percentiles per date) as CSV\n"
    "  --db FILE          store the run in this SQLite database\n"
    "  --report FILE      write the run's HTML report (keel report)\n"
    "  -q, --quiet        print nothing but errors\n"
    "  -h, --help         this help\n"
    "\n"
    "A progress bar is drawn on standard error when it is a terminal.\n";

typedef struct stress_cli {
  const char *spec_path;
  char *spec_text;
  size_t spec_len;
  keel_builtin builtin;
  unsigned lookback;
  double capital, contribution, band, cost_bps;
  keel_calendar rebalance;
  int bar;
  double last_draw, t0;
} stress_cli;

typedef struct stress_acct {
  keel_runspec *rs;
  keel_strategy *st;
  keel_subaccount_spec sub;
  keel_dca dca;
  keel_account_spec acct;
} stress_acct;

static void stress_policy(const stress_cli *c, keel_subaccount_spec *s, keel_dca *d) {
  keel_subaccount_spec_default(s);
  s->capital = c->capital;
  s->schedule.calendar = c->rebalance;
  s->costs.buy_bps = s->costs.sell_bps = c->cost_bps;
  s->costs.use_lots = 0;
  if (c->band > 0) {
    s->band.kind = KEEL_BAND_ABSOLUTE;
    s->band.abs = c->band;
  }
  if (c->contribution != 0) {
    keel_dca_default(d);
    d->amount = c->contribution;
    d->schedule.calendar = KEEL_CAL_MONTHLY;
    s->dca = d;
    s->ndca = 1;
  }
}

/* One account per worker: a run description parsed against the worker's
 * panel, or a built-in strategy instance. */
static keel_status stress_make_account(void *ud, keel_ctx *ctx, const keel_panel *panel, const keel_account_spec **spec,
                                       void **handle) {
  stress_cli *c = ud;
  stress_acct *h = calloc(1, sizeof *h);
  if (!h) return KEEL_ENOMEM;
  keel_status st;
  if (c->spec_path) {
    st = keel_runspec_parse_with(ctx, c->spec_path, c->spec_text, c->spec_len, panel, NULL, &lua_setup.loader,
                                 &h->rs);
    if (!st) *spec = keel_runspec_account(h->rs);
  } else {
    keel_builtin_params bp;
    keel_builtin_params_default(&bp);
    bp.lookback = c->lookback;
    st = keel_strategy_builtin(ctx, c->builtin, &bp, &h->st);
    if (!st) {
      stress_policy(c, &h->sub, &h->dca);
      h->sub.strategy = h->st;
      keel_account_spec_default(&h->acct);
      h->acct.nsubs = 1;
      h->acct.subs = &h->sub;
      *spec = &h->acct;
    }
  }
  if (st) {
    free(h);
    return st;
  }
  *handle = h;
  return KEEL_OK;
}

static void stress_free_account(void *ud, void *handle) {
  (void)ud;
  stress_acct *h = handle;
  keel_runspec_free(h->rs);
  keel_strategy_free(h->st);
  free(h);
}

static void stress_progress(void *ud, size_t done, size_t total) {
  stress_cli *c = ud;
  if (!c->bar) return;
  double eta = done == total ? 0 : done > 0 ? (wall_seconds() - c->t0) / (double)done * (double)(total - done) : -1;
  draw_bar(&c->last_draw, done, total, eta, "paths");
}

static void print_stress_row(const keel_stress_result *r, const char *label, keel_stress_stat s, int pct) {
  const double *bp = keel_stress_band_probs();
  printf("  %-22s", label);
  for (int b = 0; b < KEEL_STRESS_NBANDS; b++) {
    double v = keel_stress_quantile(r, s, bp[b]);
    if (isnan(v))
      printf(" %12s", "n/a");
    else if (pct)
      printf(" %11.2f%%", 100 * v);
    else
      printf(" %12.2f", v);
  }
  printf("\n");
}

static int write_fan(keel_ctx *ctx, const char *path, const keel_stress_result *r) {
  const size_t P = keel_stress_band_npoints(r);
  double *t = malloc(P * 7 * sizeof *t);
  if (!t) return usage_error("out of memory");
  const size_t *rows = keel_stress_band_rows(r);
  const double spy = (double)keel_stress_nsteps(r) / keel_stress_years(r);
  for (size_t i = 0; i < P; i++) {
    t[i * 7] = (double)rows[i];
    t[i * 7 + 1] = (double)rows[i] / spy;
    for (int b = 0; b < 5; b++) t[i * 7 + 2 + b] = keel_stress_bands(r)[i * 5 + (size_t)b];
  }
  static const char *const names[] = {"step", "years", "p05", "p25", "p50", "p75", "p95"};
  keel_status st = keel_table_write_csv(ctx, path, 7, names, P, t);
  free(t);
  return st ? fail(ctx) : 0;
}

static int cmd_stress(keel_ctx *ctx, int argc, char **argv) {
  cmd_name = "keel stress";
  bt_opts po = {0};
  stress_cli c = {.builtin = KEEL_STRAT_EQUAL, .capital = 100000, .cost_bps = 10, .rebalance = KEEL_CAL_QUARTERLY};
  const char *strategy = NULL, *weights = NULL, *generator = "bootstrap", *steps = "monthly", *fan = NULL,
             *scen_file = NULL, *rebalance = NULL, *store_db = NULL, *report = NULL;
  char scenario[4096] = "";
  const char *groups[64];
  size_t ngroups = 0;
  double paths = 10000, years = 30, seed = 1, threads = 0, dof = 5, block = 0, states = 2, goal = 0, loss = 0.2;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  threads = ncpu > 0 ? (double)ncpu : 1;
  static const struct option longopts[] = {
      {"prices", required_argument, 0, 'p'},      {"db", required_argument, 0, 'd'},
      {"dataset", required_argument, 0, 'D'},     {"strategy", required_argument, 0, 'S'},
      {"weights", required_argument, 0, 'w'},     {"spec", required_argument, 0, 'J'},
      {"capital", required_argument, 0, 'k'},     {"contribution", required_argument, 0, 'c'},
      {"rebalance", required_argument, 0, 'r'},   {"band", required_argument, 0, 'b'},
      {"cost-bps", required_argument, 0, 'C'},    {"generator", required_argument, 0, 'g'},
      {"paths", required_argument, 0, 'n'},       {"years", required_argument, 0, 'y'},
      {"steps", required_argument, 0, 's'},       {"seed", required_argument, 0, 'e'},
      {"threads", required_argument, 0, 't'},     {"dof", required_argument, 0, 'f'},
      {"block", required_argument, 0, 'B'},       {"states", required_argument, 0, 'K'},
      {"scenario", required_argument, 0, 'x'},    {"scenario-file", required_argument, 0, 'X'},
      {"group", required_argument, 0, 'G'},       {"goal", required_argument, 0, 'o'},
      {"loss", required_argument, 0, 'l'},        {"fan", required_argument, 0, 'F'},
      {"quiet", no_argument, 0, 'q'},             {"help", no_argument, 0, 'h'},
      {"report", required_argument, 0, 'W'},      {0, 0, 0, 0}};
  int ch, quiet = 0;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
    double *num = NULL;
    const char *what = NULL;
    switch (ch) {
      case 'p': po.prices = optarg; break;
      case 'd': po.db = store_db = optarg; break;
      case 'D': po.dataset = optarg; break;
      case 'S': strategy = optarg; break;
      case 'w': weights = optarg; break;
      case 'J': c.spec_path = optarg; break;
      case 'r': rebalance = optarg; break;
      case 'g': generator = optarg; break;
      case 's': steps = optarg; break;
      case 'F': fan = optarg; break;
      case 'W': report = optarg; break;
      case 'X': scen_file = optarg; break;
      case 'x':
        if (strlen(scenario) + strlen(optarg) + 2 > sizeof scenario) return usage_error("--scenario: too long");
        if (*scenario) strcat(scenario, ";");
        strcat(scenario, optarg);
        break;
      case 'G':
        if (ngroups == 64) return usage_error("--group: at most 64 groups");
        if (!strchr(optarg, '=')) return usage_error("--group: '%s' is not NAME=TARGET", optarg);
        groups[ngroups++] = optarg;
        break;
      case 'q': quiet = 1; break;
      case 'k': num = &c.capital, what = "--capital"; break;
      case 'c': num = &c.contribution, what = "--contribution"; break;
      case 'b': num = &c.band, what = "--band"; break;
      case 'C': num = &c.cost_bps, what = "--cost-bps"; break;
      case 'n': num = &paths, what = "--paths"; break;
      case 'y': num = &years, what = "--years"; break;
      case 'e': num = &seed, what = "--seed"; break;
      case 't': num = &threads, what = "--threads"; break;
      case 'f': num = &dof, what = "--dof"; break;
      case 'B': num = &block, what = "--block"; break;
      case 'K': num = &states, what = "--states"; break;
      case 'o': num = &goal, what = "--goal"; break;
      case 'l': num = &loss, what = "--loss"; break;
      case 'h': fputs(STRESS_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (num && parse_number(optarg, num)) return usage_error("%s: '%s' is not a number", what, optarg);
  }
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!po.prices && !po.dataset) return usage_error("give the prices: --prices FILE or --db FILE --dataset NAME");
  if (po.prices && po.dataset) return usage_error("--prices and --dataset cannot be used together");
  if (po.dataset && !po.db) return usage_error("--dataset needs --db FILE");
  if ((strategy != NULL) + (weights != NULL) + (c.spec_path != NULL) > 1)
    return usage_error("give one of --strategy, --weights and --spec");
  keel_mc_kind kind;
  if (keel_mc_kind_parse(generator, &kind))
    return usage_error("--generator: '%s' is not bootstrap, normal, student_t, regime or constant", generator);
  keel_mc_freq freq;
  if (!strcmp(steps, "daily"))
    freq = KEEL_MC_DAILY;
  else if (!strcmp(steps, "monthly"))
    freq = KEEL_MC_MONTHLY;
  else
    return usage_error("--steps: '%s' is not daily or monthly", steps);
  if (strategy && (keel_builtin_parse(strategy, &c.builtin) || c.builtin == KEEL_STRAT_FIXED))
    return usage_error("--strategy: '%s' is not equal, inverse_vol, min_variance, max_sharpe or risk_parity (a fixed "
                       "basket is --weights)",
                       strategy);
  if (rebalance && keel_calendar_parse(rebalance, &c.rebalance))
    return usage_error("--rebalance: '%s' is not daily, weekly, monthly, quarterly, yearly or never", rebalance);
  if (paths < 1 || paths > 1e8 || paths != floor(paths)) return usage_error("--paths must be a whole number >= 1");
  if (!(years > 0 && years <= 200)) return usage_error("--years must be in (0, 200]");
  if (seed < 0 || seed != floor(seed) || seed > 9007199254740992.0) return usage_error("--seed must be a whole number >= 0");
  if (threads < 1 || threads > 1024 || threads != floor(threads)) return usage_error("--threads must be from 1 to 1024");
  if (states < 1 || states > 64 || states != floor(states)) return usage_error("--states must be from 1 to 64");
  if (c.capital < 0) return usage_error("--capital must be >= 0");
  if (goal < 0) return usage_error("--goal must be >= 0");
  if (c.spec_path && (c.contribution != 0 || c.band != 0 || rebalance))
    return usage_error("--contribution, --band and --rebalance cannot be used with --spec (the description sets them)");

  keel_panel *p = NULL;
  char *base = NULL;
  const char *source = NULL;
  int rc = load_prices(ctx, &po, &p, &base, &source);
  if (rc) return rc;
  const size_t na = keel_panel_nassets(p);
  keel_mc *g = NULL;
  keel_scenario *sc = NULL;
  keel_stress_result *r = NULL;
  double *w = NULL;
  char *sjson = NULL;
  keel_subaccount_spec fixed_sub;
  keel_dca fixed_dca;
  keel_account_spec fixed_acct;
  keel_stress_options o;
  keel_stress_options_default(&o);
  keel_mc_calibration cal;
  keel_mc_calibration_default(&cal);
  cal.kind = kind;
  cal.freq = freq;
  cal.years = years;
  cal.dof = dof;
  cal.block_mean = block;
  cal.nstates = (size_t)states;
  if (keel_mc_calibrate(ctx, p, &cal, &g) != KEEL_OK) {
    rc = fail(ctx);
    goto out;
  }
  if (*scenario || scen_file || ngroups) {
    const char **syms = malloc(na * sizeof *syms);
    if (!syms) {
      rc = usage_error("out of memory");
      goto out;
    }
    for (size_t j = 0; j < na; j++) syms[j] = keel_panel_symbol(p, j);
    keel_status st = keel_scenario_new(ctx, na, syms, &sc);
    free(syms);
    for (size_t k = 0; !st && k < ngroups; k++) {
      char name[128];
      const char *eq = strchr(groups[k], '=');
      snprintf(name, sizeof name, "%.*s", (int)(eq - groups[k]), groups[k]);
      st = keel_scenario_add_group(ctx, sc, name, eq + 1);
    }
    if (!st && scen_file) {
      size_t len = 0;
      sjson = read_text(scen_file, &len);
      if (!sjson) {
        rc = 1;
        goto out;
      }
      st = keel_scenario_parse_json(ctx, sc, scen_file, sjson, len);
    }
    if (!st && *scenario) st = keel_scenario_parse(ctx, sc, scenario);
    if (!st) st = keel_mc_set_scenario(ctx, g, sc);
    if (st) {
      rc = fail(ctx);
      goto out;
    }
  }
  o.gen = g;
  o.history = p;
  o.npaths = (size_t)paths;
  o.seed = (uint64_t)seed;
  o.threads = (int)threads;
  o.goal = goal;
  o.loss_threshold = loss;
  c.lookback = freq == KEEL_MC_DAILY ? 252 : 36;
  if (weights) {
    if (!(w = calloc(na, sizeof *w))) {
      rc = usage_error("out of memory");
      goto out;
    }
    if ((rc = parse_weights(weights, p, w))) goto out;
    stress_policy(&c, &fixed_sub, &fixed_dca);
    fixed_sub.weights = w;
    keel_account_spec_default(&fixed_acct);
    fixed_acct.nsubs = 1;
    fixed_acct.subs = &fixed_sub;
    o.account = &fixed_acct;
  } else {
    if (c.spec_path && !(c.spec_text = read_text(c.spec_path, &c.spec_len))) {
      rc = 1;
      goto out;
    }
    o.make_account = stress_make_account;
    o.free_account = stress_free_account;
    o.account_ud = &c;
    o.history_rows = c.spec_path ? (freq == KEEL_MC_DAILY ? 252 : 60) : c.lookback;
  }
  c.bar = !quiet && isatty(STDERR_FILENO);
  c.t0 = wall_seconds();
  o.progress = stress_progress;
  o.progress_ud = &c;
  if (keel_stress_run(ctx, &o, &r) != KEEL_OK) {
    if (c.bar) fputc('\n', stderr);
    rc = fail(ctx);
    goto out;
  }
  double secs = wall_seconds() - c.t0;
  const char *what = weights ? "fixed weights" : c.spec_path ? c.spec_path : keel_builtin_name(c.builtin);
  if (!quiet) {
    printf("stress test of %s: %zu paths x %g years (%zu %s steps), generator %s, %s\n", source, keel_stress_npaths(r),
           keel_stress_years(r), keel_stress_nsteps(r), freq == KEEL_MC_DAILY ? "daily" : "monthly",
           keel_mc_kind_name(kind), what);
    if (*scenario || scen_file)
      printf("scenario: %s%s%s\n", scenario, *scenario && scen_file ? "; " : "", scen_file ? scen_file : "");
    printf("capital %.2f", keel_stress_capital(r));
    if (keel_stress_has_flows(r))
      printf(", paid in %.2f and out %.2f per path on average (capital included)", keel_stress_mean_in(r),
             keel_stress_mean_out(r));
    printf("\n\n  %-22s %12s %12s %12s %12s %12s\n", "percentile", "5%", "25%", "50%", "75%", "95%");
    print_stress_row(r, "terminal wealth", KEEL_STRESS_WEALTH, 0);
    print_stress_row(r, "CAGR (time-weighted)", KEEL_STRESS_CAGR, 1);
    if (keel_stress_has_flows(r)) print_stress_row(r, "IRR (money-weighted)", KEEL_STRESS_IRR, 1);
    print_stress_row(r, "max drawdown", KEEL_STRESS_MAX_DRAWDOWN, 1);
    print_stress_row(r, "time under water (y)", KEEL_STRESS_UNDERWATER, 0);
    print_stress_row(r, "costs paid", KEEL_STRESS_COSTS, 0);
    printf("\n");
    if (goal > 0)
      printf("P(wealth >= %.2f after %g years): %.1f%% (reached at some point: %.1f%%)\n", goal, keel_stress_years(r),
             100 * keel_stress_prob_goal(r, goal, 0), 100 * keel_stress_prob_goal(r, goal, 1));
    printf("P(loss > %g%%): %.1f%%\n", 100 * loss, 100 * keel_stress_prob_loss(r, loss));
    printf("expected shortfall (worst %g%%): wealth %.2f, loss %.2f%%\n", 100 * keel_stress_es_level(r),
           keel_stress_shortfall(r, KEEL_STRESS_WEALTH, keel_stress_es_level(r)),
           100 * keel_stress_shortfall(r, KEEL_STRESS_LOSS, keel_stress_es_level(r)));
    printf("ran in %.2f s on %d thread%s\n", secs, (int)threads, threads == 1 ? "" : "s");
  }
  if (fan && (rc = write_fan(ctx, fan, r))) goto out;
  if (store_db || report) {
    char scratch[4096];
    if (!store_db && cli_scratch_db(scratch, sizeof scratch)) {
      rc = 1;
      goto out;
    }
    const char *dbp = store_db ? store_db : scratch;
    json_t *pj = json_pack("{s:s,s:I,s:f,s:s,s:I,s:f,s:f,s:s}", "generator", keel_mc_kind_name(kind), "paths",
                           (json_int_t)paths, "years", years, "steps", steps, "seed", (json_int_t)seed, "goal", goal,
                           "loss", loss, "scenario", scenario);
    char *pjs = pj ? json_dumps(pj, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(pj);
    char ph[KEEL_PANEL_HASH_BUFSIZE];
    keel_panel_hash(p, ph);
    keel_stress_meta m = {.strategy = weights ? "fixed_weights" : what, .params_json = pjs ? pjs : "{}",
                          .dataset = source, .dataset_hash = ph, .generator = keel_mc_kind_name(kind),
                          .scenario = scenario};
    keel_store *s = NULL;
    int64_t id = 0;
    keel_status st = keel_store_open(ctx, dbp, &s);
    if (!st) st = keel_stress_save(ctx, s, r, &m, &id);
    keel_store_close(s);
    free(pjs);
    if (st) rc = fail(ctx);
    else if (!quiet && store_db) printf("stored as run %lld in %s\n", (long long)id, store_db);
    if (!rc && report) rc = cli_write_report(ctx, dbp, &id, 1, report, quiet);
    if (!store_db) cli_scratch_db_remove(scratch);
    if (rc) goto out;
  }
out:
  keel_stress_result_free(r);
  keel_scenario_free(sc);
  keel_mc_free(g);
  keel_panel_free(p);
  free(w);
  free(sjson);
  free(c.spec_text);
  free(base);
  return rc;
}

/* The quotes as JSON from the last price of each column of a panel. */
static char *quotes_from_panel(const keel_panel *p) {
  const size_t na = keel_panel_nassets(p), nd = keel_panel_ndates(p);
  json_t *o = json_object();
  for (size_t j = 0; o && j < na; j++) {
    size_t i = nd;
    while (i-- > 0 && isnan(keel_panel_price(p, i, j))) {
    }
    if (i < nd && json_object_set_new(o, keel_panel_symbol(p, j), json_real(keel_panel_price(p, i, j)))) {
      json_decref(o);
      o = NULL;
    }
  }
  char *q = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(o);
  if (!q) fprintf(stderr, "keel: out of memory\n");
  return q;
}

static int cmd_advise(keel_ctx *ctx, int argc, char **argv) {
  cmd_name = "keel advise";
  const char *tmpl = NULL, *profile = NULL, *holdings = NULL, *quotes = NULL, *prices = NULL, *history = NULL;
  double paths = 1000;
  const char *dirs[3 * MAX_STRATEGY_DIRS + 8];
  size_t ndirs = 0;
  double cost_bps = 0, fee = 0;
  int text = 0;
  static const struct option longopts[] = {
      {"template", required_argument, 0, 't'}, {"profile", required_argument, 0, 'p'},
      {"holdings", required_argument, 0, 'H'}, {"quotes", required_argument, 0, 'q'},
      {"prices", required_argument, 0, 'P'},   {"cost-bps", required_argument, 0, 'b'},
      {"fee", required_argument, 0, 'f'},      {"strategies", required_argument, 0, 's'},
      {"text", no_argument, 0, 'x'},           {"help", no_argument, 0, 'h'},
      {"history", required_argument, 0, 'y'},  {"paths", required_argument, 0, 'n'},
      {0, 0, 0, 0}};
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    double *num = NULL;
    const char *what = argv[optind - 1];
    switch (ch) {
      case 't': tmpl = optarg; break;
      case 'p': profile = optarg; break;
      case 'H': holdings = optarg; break;
      case 'q': quotes = optarg; break;
      case 'P': prices = optarg; break;
      case 'y': history = optarg; break;
      case 'n': num = &paths; break;
      case 'b': num = &cost_bps; break;
      case 'f': num = &fee; break;
      case 'x': text = 1; break;
      case 's':
        if (ndirs == MAX_STRATEGY_DIRS) return usage_error("at most %d --strategies folders", MAX_STRATEGY_DIRS);
        dirs[ndirs++] = optarg;
        break;
      case 'h': fputs(ADVISE_HELP, stdout); return 0;
      case ':': return usage_error("option %s needs a value", argv[optind - 1]);
      default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
    if (num && parse_number(optarg, num)) return usage_error("%s: '%s' is not a number", what, optarg);
  }
  if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
  if (!tmpl) return usage_error("--template NAME|FILE is required");
  if (!profile) return usage_error("--profile FILE is required");
  if (!quotes == !prices) return usage_error("give one of --quotes FILE and --prices CSV");
  if (!(cost_bps >= 0 && cost_bps < 10000)) return usage_error("--cost-bps must be in [0, 10000)");
  if (!(fee >= 0 && isfinite(fee))) return usage_error("--fee must be >= 0");
  if (!(paths >= 10 && paths <= 1e6 && paths == floor(paths))) return usage_error("--paths must be a whole number from 10");
  if (prices && history) return usage_error("--prices is the history already; --history goes with --quotes");
  for (size_t i = 0; i < lua_setup.ndirs; i++) dirs[ndirs++] = lua_setup.dirs[i];
  dirs[ndirs] = NULL;
  keel_lua_config cfg = lua_setup.cfg;
  cfg.paths = dirs;
  int rc = 0;
  size_t len;
  char *pj = NULL, *hj = NULL, *qj = NULL, *json = NULL;
  keel_template *t = NULL;
  keel_advice *a = NULL;
  keel_cost_model costs;
  keel_cost_model_default(&costs);
  costs.buy_bps = costs.sell_bps = cost_bps;
  costs.fee = fee;
  keel_panel *hist = NULL;
  const char *hpath = prices ? prices : history;
  if (hpath && keel_panel_read_csv(ctx, hpath, NULL, &hist) != KEEL_OK) {
    rc = fail(ctx);
    goto done;
  }
  if (!(pj = read_text(profile, &len)) || (holdings && !(hj = read_text(holdings, &len))) ||
      (quotes && !(qj = read_text(quotes, &len))) || (prices && !(qj = quotes_from_panel(hist)))) {
    rc = 1;
    goto done;
  }
  keel_advice_input opts;
  keel_advice_input_default(&opts);
  opts.costs = costs;
  opts.history = hist;
  opts.goal_paths = (size_t)paths;
  if (keel_template_load(ctx, &cfg, tmpl, &t) || keel_advise_json(ctx, t, pj, hj, qj, &opts, &a) ||
      keel_advice_to_json(ctx, a, &json)) {
    rc = fail(ctx);
    goto done;
  }
  if (text) printf("%s\n", keel_advice_explanation(a));
  else printf("%s\n", json);
done:
  free(json);
  keel_advice_free(a);
  keel_template_free(t);
  free(pj);
  free(hj);
  free(qj);
  keel_panel_free(hist);
  return rc;
}


int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(MAIN_HELP, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
    fputs(MAIN_HELP, stdout);
    return 0;
  }
  if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
    printf("keel %s\n", keel_version());
    return 0;
  }
  if (!strcmp(cmd, "help")) {
    const char *t = argc > 2 ? argv[2] : NULL;
    if (!t) fputs(MAIN_HELP, stdout);
    else if (!strcmp(t, "backtest")) fputs(BACKTEST_HELP, stdout);
    else if (!strcmp(t, "optimize") || !strcmp(t, "frontier")) fputs(OPTIMIZE_HELP, stdout);
    else if (!strcmp(t, "import")) fputs(IMPORT_HELP, stdout);
    else if (!strcmp(t, "batch")) fputs(BATCH_HELP, stdout);
    else if (!strcmp(t, "sample")) fputs(SAMPLE_HELP, stdout);
    else if (!strcmp(t, "advise")) fputs(ADVISE_HELP, stdout);
    else if (!strcmp(t, "stress")) fputs(STRESS_HELP, stdout);
    else if (!strcmp(t, "report")) fputs(REPORT_HELP, stdout);
    else return usage_error("no command '%s'", t);
    return 0;
  }
  int (*fn)(keel_ctx *, int, char **) = NULL;
  if (!strcmp(cmd, "backtest")) fn = cmd_backtest;
  else if (!strcmp(cmd, "optimize")) fn = cmd_optimize;
  else if (!strcmp(cmd, "frontier")) fn = cmd_frontier;
  else if (!strcmp(cmd, "import")) fn = cmd_import;
  else if (!strcmp(cmd, "batch")) fn = cmd_batch;
  else if (!strcmp(cmd, "sample")) fn = cmd_sample;
  else if (!strcmp(cmd, "advise")) fn = cmd_advise;
  else if (!strcmp(cmd, "stress")) fn = cmd_stress;
  else if (!strcmp(cmd, "report")) fn = cmd_report;
  else return usage_error("no command '%s'", cmd);
  keel_ctx *ctx = NULL;
  if (keel_ctx_new(NULL, &ctx) != KEEL_OK) {
    fprintf(stderr, "keel: out of memory\n");
    return 1;
  }
  lua_setup_init();
  int rc = fn(ctx, argc - 1, argv + 1);
  free(lua_setup.env);
  keel_ctx_free(ctx);
  fflush(stdout);
  return rc;
}
