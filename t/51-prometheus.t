#!/usr/bin/perl
# The operator's kit against a real Prometheus: the alerting rules of
# conf/prometheus and the Grafana dashboard conf/grafana/inventory.json.
#
# * promtool check rules and promtool test rules (conf/prometheus/tests)
#   pass on the shipped files.
# * A primary and a follower, and Debian's prometheus binary on loopback
#   (a temporary TSDB) scraping both every second and loading the rules,
#   while clients write, read, reserve (carts left to expire), transfer,
#   and get 404, 409, 400 on the primary and 503 not-primary on the
#   follower.
# * Prometheus reaches both targets; every rule loaded with health "ok" and
#   no error, the same rules as the files name.
# * Every rule's expression, and every query of every dashboard panel, is
#   evaluated through /api/v1/query and must return data: a metric or a
#   label value renamed in the module, the rules or the dashboard leaves a
#   query empty and fails here.  An alert's expression returns nothing
#   while all is well, so it is taken apart (operands below): cut at its
#   top-level `or`, then `and`/`unless`, then comparisons, recursively,
#   matching modifiers (on, ignoring, group_left/right, bool) and outer
#   parentheses dropped, numbers left out; each operand left must return
#   data, and the whole must evaluate.  (`bool` on the comparisons alone
#   would not do: `a unless b` is empty when b has data, `a or b` has data
#   when b is renamed; and an empty operand is named.)  The expressions
#   are those Prometheus loaded, read back from /api/v1/rules.
#   Grafana's variables are replaced first ($job: the scrape job,
#   $instance: .*, $__rate_interval: 1m); the dashboard's variable queries
#   (label_values) must list both nodes.  Every metric family the module
#   exports is shown by some panel.
# * Alerts fire in the live Prometheus: the primary is stopped, and the
#   follower's InventoryReplicationDisconnected goes pending, then firing,
#   beside InventoryDown and InventoryNoWritablePrimary.  So that this
#   takes seconds, Prometheus loads a copy of the rules whose only change
#   is `for: 2s` (the shipped `for:` are minutes; promtool's tests cover
#   them).
#
# Skipped when prometheus or promtool is missing (make deps installs them).
use strict;
use warnings;
use Test::More;
use File::Basename qw(basename);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use InvTest qw(decode_json slurp which free_port run_tool parallel_start
               parallel_stop last_seq wait_applied);

my $PROMETHEUS = which('prometheus');
my $PROMTOOL = which('promtool');
plan skip_all => 'prometheus and promtool are needed (make deps installs '
                 . 'the prometheus package)'
    unless $PROMETHEUS && $PROMTOOL;

my $T0 = time;
my $SAN = $ENV{INVENTORY_PRELOAD} ? 1 : 0;
my $LOAD_SECONDS = $SAN ? 5 : 6;
my $CLIENTS = 3;
my $JOB = 'inventory';          # the job the rules' InventoryDown names
my $LIVE_FOR = '2s';            # the rules' for: in the live Prometheus

my $ROOT = $InvTest::ROOT;
my @RULES = sort glob "$ROOT/conf/prometheus/*.yml";
my @RULE_TESTS = sort glob "$ROOT/conf/prometheus/tests/*.yml";
my $DASHBOARD = "$ROOT/conf/grafana/inventory.json";
ok(@RULES, 'conf/prometheus has rule files: '
           . join(' ', map { basename($_) } @RULES));
ok(@RULE_TESTS, 'conf/prometheus/tests has promtool tests');

# --- promtool -----------------------------------------------------------------
for my $f (@RULES) {
    my ($rc, $out, $err) = run_tool($PROMTOOL, 'check', 'rules', $f);
    ok($rc == 0 && $out =~ /SUCCESS/ && "$out$err" !~ /WARNING|FAILED/,
       'promtool check rules ' . basename($f)) or diag "$out$err";
}
for my $f (@RULE_TESTS) {
    my ($rc, $out, $err) = run_tool($PROMTOOL, 'test', 'rules', $f);
    ok($rc == 0 && $out =~ /SUCCESS/, 'promtool test rules '
                                      . basename($f)) or diag "$out$err";
}

# the rules the files name ("- alert: X", "- record: Y"), in order
my @NAMES = map { my $t = slurp($_); $t =~ /^\s*-\s*(?:alert|record):\s*(\S+)/mg }
            @RULES;
ok(@NAMES, scalar(@NAMES) . ' rules in the files');

# every alert is unit-tested, in both directions (a firing and a silent
# evaluation of it)
{
    my $tests = join '', map { slurp($_) } @RULE_TESTS;
    my %n;
    $n{$1}{ $2 ? 'fires' : 'silent' }++
        while $tests =~ /alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\[\])?/g;
    my @alerts = map { my $t = slurp($_); $t =~ /^\s*-\s*alert:\s*(\S+)/mg }
                 @RULES;
    my @untested = grep { !$n{$_}{fires} || !$n{$_}{silent} } @alerts;
    ok(!@untested, 'every alert has a test where it fires and one where it '
                   . 'does not') or diag "untested: @untested";
}

# every runbook_url names a heading of the doc it points into (GitHub's
# anchors: lower case, spaces to hyphens, other punctuation left out)
for my $f (@RULES) {
    my @bad;
    my $t = slurp($f);
    while ($t =~ /runbook_url:\s*(\S+)#(\S+)/g) {
        my ($doc, $anchor) = ($1, $2);
        my %anchors = map { my $h = lc $_; $h =~ s/[^\w\- ]//g; $h =~ s/ /-/g;
                            ($h => 1) }
                      (slurp("$ROOT/$doc") // '') =~ /^#+\s+(.+?)\s*$/mg;
        push @bad, "$doc#$anchor" unless $anchors{$anchor};
    }
    ok(!@bad, basename($f) . ': each runbook_url is a section of the docs')
        or diag "no such section: @bad";
}

# the dashboard
my $dash = eval { JSON::PP->new->decode(slurp($DASHBOARD) // '') };
ok(ref $dash eq 'HASH', 'conf/grafana/inventory.json is JSON') or diag $@;
$dash = {} unless ref $dash eq 'HASH';

# panels($list): every panel, those of rows too
sub panels { map { ($_, panels($_->{panels} // [])) } @{ $_[0] // [] } }
my @PANELS = grep { $_->{type} ne 'row' } panels($dash->{panels});
ok(@PANELS >= 10, scalar(@PANELS) . ' panels');
{
    my %vars = map { $_->{name} => $_ } @{ $dash->{templating}{list} // [] };
    is($vars{datasource}{type} // '', 'datasource',
       'a data source variable ($datasource)');
    is($vars{datasource}{query} // '', 'prometheus', 'of Prometheus');
    my (%ids, @bad);
    for my $p (panels($dash->{panels})) {
        push @bad, "id $p->{id} twice" if $ids{ $p->{id} // '' }++;
        push @bad, "$p->{title}: no gridPos" unless ref $p->{gridPos};
        next if $p->{type} eq 'row';
        push @bad, "$p->{title}: no targets" unless @{ $p->{targets} // [] };
        for my $d ($p->{datasource}, map { $_->{datasource} }
                                     @{ $p->{targets} // [] }) {
            push @bad, "$p->{title}: data source is not \${datasource}"
                unless ($d->{uid} // '') eq '${datasource}';
        }
        push @bad, "$p->{title}: a target without expr"
            if grep { !$_->{expr} } @{ $p->{targets} // [] };
    }
    ok(!@bad, 'every panel has a place, an id of its own, and queries of '
              . 'the data source variable') or diag join "\n", @bad;
}

# Grafana's variables, as a dashboard of one job and all its instances
my %GRAFANA = (job => $JOB, instance => '.*', __rate_interval => '1m',
               __interval => '15s', __range => '1h');
sub grafana_vars {
    my ($e) = @_;
    $e =~ s{\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]}{
        my $v = $1 // $2 // $3;
        $GRAFANA{$v} // die "unknown Grafana variable \$$v in $_[0]\n"
    }ge;
    return $e;
}

# --- nodes, Prometheus ----------------------------------------------------------
my $REPL = 'location /replication/ { inventory_replication; }';
my $P = InvTest->start(server_extra => $REPL);
my $F = InvTest->start(http_extra => 'inventory_follow '
                                     . $P->url('/replication/') . ';');
for my $c (0 .. $CLIENTS - 1) {
    is($P->req(PUT => "/v1/inventory/PROM-$c/s1",
               json => { on_hand => 1_000_000 })->{status}, 201,
       "setup: PROM-$c");
}
ok(wait_applied($F, last_seq($P), 30), 'the follower holds the items');
my %NODE = (primary => '127.0.0.1:' . $P->port,
            follower => '127.0.0.1:' . $F->port);

my $PDIR = tempdir('inventory-prometheus-XXXXXX', TMPDIR => 1,
                   CLEANUP => !$ENV{INVENTORY_KEEP});
diag "keeping $PDIR" if $ENV{INVENTORY_KEEP};
mkdir "$PDIR/rules" or die "mkdir: $!";
my @LIVE_RULES;
for my $f (@RULES) {
    my $t = slurp($f);
    (my $live = $t) =~ s/^(\s*for:\s*)\S+/$1$LIVE_FOR/mg;
    my $strip = sub { (my $s = $_[0]) =~ s/^\s*for:.*\n//mg; $s };
    die "the live copy of $f changed more than for:\n"
        unless $strip->($live) eq $strip->($t);
    my $copy = "$PDIR/rules/" . basename($f);
    open my $fh, '>', $copy or die "$copy: $!";
    print {$fh} $live;
    close $fh;
    push @LIVE_RULES, $copy;
}
{
    open my $fh, '>', "$PDIR/prometheus.yml" or die "prometheus.yml: $!";
    print {$fh} <<"EOF";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
@{[ join "\n", map { "  - $_" } @LIVE_RULES ]}
scrape_configs:
  - job_name: $JOB
    metrics_path: /metrics
    static_configs:
      - targets: ['$NODE{primary}', '$NODE{follower}']
EOF
    close $fh;
}

my $PROM_PORT = free_port();
my $PROM = "http://127.0.0.1:$PROM_PORT";
my $PROM_PID = fork // die "fork: $!";
if (!$PROM_PID) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$PDIR/prometheus.log" or POSIX::_exit(127);
    open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
    { no warnings 'exec';
      exec $PROMETHEUS, "--config.file=$PDIR/prometheus.yml",
           "--storage.tsdb.path=$PDIR/tsdb",
           "--web.listen-address=127.0.0.1:$PROM_PORT",
           '--storage.tsdb.retention.time=1h'; }
    POSIX::_exit(127);
}
my $OWNER = $$;
sub stop_prometheus {
    return unless $PROM_PID && $$ == $OWNER;
    kill 'TERM', $PROM_PID;
    my $deadline = time + 10;
    while (waitpid($PROM_PID, POSIX::WNOHANG()) == 0) {
        if (time > $deadline) {
            kill 'KILL', $PROM_PID;
            waitpid $PROM_PID, 0;
            last;
        }
        sleep 0.05;
    }
    $PROM_PID = undef;
}
END { local $?; stop_prometheus() }

my $HT = HTTP::Tiny->new(timeout => 10);
my $ready = 0;
for (1 .. 200) {
    my $r = $HT->get("$PROM/-/ready");
    if ($r->{status} == 200) { $ready = 1; last }
    sleep 0.1;
}
ok($ready, 'Prometheus is ready')
    or die "Prometheus did not start:\n" . (slurp("$PDIR/prometheus.log") // '');

# api($path, %query): the decoded answer of Prometheus's HTTP API (a
# status and the error when it is not JSON)
sub api {
    my ($path, %q) = @_;
    my $r = $HT->get("$PROM/api/v1/$path"
                     . (%q ? '?' . $HT->www_form_urlencode(\%q) : ''));
    my $j = eval { decode_json($r->{content}) };
    return ref $j eq 'HASH' ? $j : { status => "HTTP $r->{status}",
                                     error => $r->{content} };
}

# query($expr): (its result list, or undef and the error)
sub query {
    my ($e) = @_;
    my $j = api('query', query => $e);
    return (undef, $j->{error} // $j->{status})
        unless ($j->{status} // '') eq 'success';
    my $res = $j->{data}{result};
    # a scalar is [time, value]: one value
    return ($j->{data}{resultType} eq 'scalar' ? [$res] : $res);
}

# wait_query($expr, $n, $seconds): true once $expr returns $n series
sub wait_query {
    my ($e, $n, $t) = @_;
    my $deadline = time + $t;
    while (time < $deadline) {
        my ($r) = query($e);
        return 1 if $r && @$r == $n;
        sleep 0.1;
    }
    return 0;
}

# Prometheus applies its targets some seconds after it starts (it
# throttles the updates of its target lists to one each 5 s)
ok(wait_query("up{job=\"$JOB\"} == 1", 2, 20),
   'Prometheus scrapes both nodes');

# --- load while Prometheus scrapes ------------------------------------------------
my $t_load = time;
my $load = parallel_start($CLIENTS, sub {
    my ($c, $stop) = @_;
    my $item = "/v1/inventory/PROM-$c/s1";
    my ($n, @bad) = (0);
    my $want = sub {
        my ($r, $status, $what) = @_;
        $n++;
        push @bad, "$what: $r->{status}" unless $r->{status} == $status;
        return $r->{json} // {};
    };
    while (!$stop->()) {
        $want->($P->req(POST => "$item/adjustments", json => { delta => 1 }),
                200, 'adjustment');
        $want->($P->req(GET => $item), 200, 'read');
        my $res = $want->($P->req(POST => "$item/reservations",
                                  json => { quantity => 1 }), 201, 'reserve');
        my $end = $n % 2 ? 'commit' : 'release';
        $want->($P->req(POST => "/v1/reservations/$res->{id}/$end"), 200, $end)
            if $res->{id};
        $want->($P->req(POST => '/v1/reservations',
                        json => { lines => [{ sku => "PROM-$c",
                                              location => 's1',
                                              quantity => 1 }],
                                  ttl_seconds => 1 }),
                201, 'a cart left to expire');
        $want->($P->req(POST => '/v1/transfers',
                        json => { sku => "PROM-$c", from => 's1', to => 's2',
                                  quantity => 1 }), 200, 'transfer');
        $want->($P->req(GET => '/v1/events?after=0&limit=10'), 200, 'feed');
        $want->($P->req(GET => "/v1/inventory/NONE-$c/s1"), 404,
                'an unknown item');
        $want->($P->req(POST => "$item/reservations",
                        json => { quantity => 10_000_000 }), 409,
                'a reservation beyond the stock');
        $want->($P->req(POST => "$item/adjustments", body => '{"delta":',
                        headers => { 'Content-Type' => 'application/json' }),
                400, 'a broken body');
        $want->($F->req(GET => $item), 200, 'a read on the follower');
        $want->($F->req(POST => "$item/adjustments", json => { delta => 1 }),
                503, 'a write on the follower');
        $want->($_->req(GET => '/v1/health'), 200, 'health') for $P, $F;
    }
    return join "\n", $n, @bad;
});
sleep $LOAD_SECONDS;
my @out = parallel_stop($load, 30);
my ($requests, @bad) = (0);
for (@out) {
    my ($n, @b) = split /\n/;
    $requests += $n =~ /^\d+\z/ ? $n : 0;
    push @bad, $n =~ /^\d+\z/ ? @b : ($n, @b);
}
ok($requests > 0 && !@bad, "load: $requests requests, each answered as "
                           . 'expected') or diag join "\n", @bad[0 .. ($#bad > 19 ? 19 : $#bad)];
my $t_loaded = time;

# Prometheus has scraped the state the load left (the last seq) from both
ok(wait_applied($F, last_seq($P), 30), 'the follower caught up');
my $seq = last_seq($P);
ok(wait_query("inventory_last_seq{job=\"$JOB\"} >= $seq", 2, 10),
   "Prometheus scraped last seq $seq or later from both nodes");
# rate() over [1m] needs two samples; more make the test meaningful
ok(wait_query("count_over_time(up{job=\"$JOB\"}[1m]) >= 5", 2, 10),
   'Prometheus holds 5 scrapes or more of each node');
{
    my $t = api('targets');
    my @up = grep { $_->{health} eq 'up' && !$_->{lastError} }
             @{ $t->{data}{activeTargets} // [] };
    is(scalar @up, 2, 'both targets are up, without scrape errors')
        or diag explain $t;
}
{
    my ($r) = query('inventory_reservations_expired_total > 0');
    ok($r && @$r, 'carts left expired (seen through Prometheus)');
}

# --- the rules loaded: health, and each expression ------------------------------
my @loaded;
for (1 .. 100) {
    my $j = api('rules');
    @loaded = map { @{ $_->{rules} } } @{ $j->{data}{groups} // [] };
    last if @loaded && !grep { ($_->{health} // '') eq 'unknown' } @loaded;
    sleep 0.1;
}
is_deeply([sort map { $_->{name} } @loaded], [sort @NAMES],
          'Prometheus loaded the rules the files name');
{
    my @bad = grep { ($_->{health} // '') ne 'ok' || $_->{lastError} }
              @loaded;
    ok(!@bad, 'every rule has health "ok" and no error')
        or diag join "\n", map { "$_->{name}: $_->{health} "
                                 . ($_->{lastError} // '') } @bad;
}

# split_top($e, @ops): $e cut at the operators @ops found outside
# parentheses, brackets, braces and strings (words whole); the operator and
# the modifiers that follow it (bool, on/ignoring, group_left/right) are
# left out of the parts
sub split_top {
    my ($e, @ops) = @_;
    my ($depth, $quote, $start, @parts) = (0, '', 0);
    my $i = 0;
    while ($i < length $e) {
        my $ch = substr($e, $i, 1);
        if ($quote) {
            $i++ if $ch eq '\\';
            $quote = '' if $ch eq $quote;
        } elsif ($ch =~ /["'`]/) {
            $quote = $ch;
        } elsif ($ch =~ /[(\[{]/) {
            $depth++;
        } elsif ($ch =~ /[)\]}]/) {
            $depth--;
        } elsif ($depth == 0) {
            for my $op (@ops) {
                next unless substr($e, $i, length $op) eq $op;
                if ($op =~ /^\w/) {
                    next if $i > 0 && substr($e, $i - 1, 1) =~ /[\w:]/;
                    next if substr($e, $i + length $op, 1) =~ /[\w:]/;
                }
                push @parts, substr($e, $start, $i - $start);
                $i += length $op;
                $start = $i;
                last;
            }
        }
        $i++;
    }
    return (@parts, substr($e, $start));
}

# operands($e): the parts of an expression that select series, which must
# return data while the metrics exist: cut at its top-level operators of
# lowest precedence first (or; and, unless; the comparisons), each part in
# turn, dropping matching modifiers and outer parentheses; a number is no
# operand
sub operands {
    my ($e) = @_;
    for (1 .. 10) {
        $e =~ s/^\s+|\s+\z//g;
        $e =~ s/^(?:bool|(?:on|ignoring|group_left|group_right)\s*
                 (?:\([^()]*\))?)(?![\w:])\s*//x;
        $e =~ s/^\s+|\s+\z//g;
        last unless _wrapped($e);
        $e = substr($e, 1, -1);
    }
    for my $ops (['or'], ['and', 'unless'],
                 ['==', '!=', '<=', '>=', '<', '>']) {
        my @parts = split_top($e, @$ops);
        return map { operands($_) } @parts if @parts > 1;
    }
    return () unless $e =~ /[A-Za-z_]/;
    return ($e);
}

# _wrapped($e): $e is one parenthesized expression, "( ... )"
sub _wrapped {
    my ($e) = @_;
    return 0 unless $e =~ /^\(/;
    my ($depth, $quote) = (0, '');
    for my $i (0 .. length($e) - 1) {
        my $ch = substr($e, $i, 1);
        if ($quote) { $quote = '' if $ch eq $quote; next }
        if ($ch =~ /["'`]/) { $quote = $ch; next }
        $depth++ if $ch eq '(';
        $depth-- if $ch eq ')';
        return $i == length($e) - 1 if $depth == 0;
    }
    return 0;
}

# eval_ok($label, $e): one test: $e evaluates, and each of its operands
# returns data
sub eval_ok {
    my ($label, $e) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    my ($r, $err) = query($e);
    push @p, "does not evaluate: $err" unless $r;
    my @ops = operands($e);
    push @p, 'no operand selects series' unless @ops;
    for my $o (@ops) {
        my ($r, $err) = query($o);
        push @p, !$r ? "$o: $err" : !@$r ? "$o: no data" : ();
    }
    ok(!@p, "$label: " . scalar(@ops) . ' operand(s) return data')
        or diag join "\n", "expression: $e", @p;
    note "  $_" for @ops;
}

eval_ok("rule $_->{name}", $_->{query}) for @loaded;

# --- the dashboard's queries -------------------------------------------------------
for my $v (grep { $_->{type} eq 'query' } @{ $dash->{templating}{list} // [] }) {
    my $q = ref $v->{query} ? $v->{query}{query} : $v->{query};
    my ($match, $label) = grafana_vars($q)
        =~ /^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\z/;
    ok($match, "variable \$$v->{name}: label_values(SELECTOR, LABEL)")
        or next;
    my $j = api("label/$label/values", 'match[]' => $match);
    my %have = map { $_ => 1 } @{ $j->{data} // [] };
    my @want = $label eq 'instance' ? values %NODE
             : $label eq 'job' ? ($JOB) : ();
    ok(@want && !grep({ !$have{$_} } @want),
       "variable \$$v->{name} lists " . join(', ', sort @want))
        or diag explain $j;
}
my %shown;
for my $p (@PANELS) {
    for my $t (@{ $p->{targets} // [] }) {
        my $e = eval { grafana_vars($t->{expr} // '') };
        if (!defined $e) {
            fail("panel \"$p->{title}\" $t->{refId}: $@");
            next;
        }
        $shown{$_} = 1 for $e =~ /\b(inventory_\w+)/g;
        my ($r, $err) = query($e);
        ok($r && @$r, "panel \"$p->{title}\" $t->{refId} returns data")
            or diag "$e\n" . ($err // 'no data');
    }
}
{
    # every family of both nodes' /metrics ("# TYPE name type")
    my %families;
    for my $n ($P, $F) {
        $families{$_} = 1
            for $n->req(GET => '/metrics')->{body} =~ /^# TYPE (\S+)/mg;
    }
    my @hidden = grep {
        my $f = $_;
        !grep { $_ eq $f || /^\Q$f\E_(?:bucket|sum|count)\z/ } keys %shown
    } sort keys %families;
    ok(!@hidden, 'every metric family the module exports ('
                 . scalar(keys %families) . ') is on the dashboard')
        or diag "not shown: @hidden";
}
my $t_evaluated = time;

# --- alerts firing: the primary stops --------------------------------------------
my @LIVE = ([InventoryReplicationDisconnected => instance => $NODE{follower}],
            [InventoryDown => instance => $NODE{primary}],
            [InventoryNoWritablePrimary => job => $JOB]);

# states(): "alertname label" => state, of the alerts now active
sub states {
    my $j = api('alerts');
    my %s;
    for my $a (@{ $j->{data}{alerts} // [] }) {
        for my $l (@LIVE) {
            my ($name, $k, $v) = @$l;
            $s{$name} = $a->{state}
                if $a->{labels}{alertname} eq $name
                   && ($a->{labels}{$k} // '') eq $v;
        }
    }
    return %s;
}

{
    my %s = states();
    ok(!%s, 'while both nodes serve, none of '
            . join(', ', map { $_->[0] } @LIVE) . ' is active')
        or diag explain \%s;
}
$P->stop;
my $t_stopped = time;
my (%seen, %fired);
while (time < $t_stopped + 30 && keys %fired < @LIVE) {
    my %s = states();
    for (keys %s) {
        $seen{$_}{ $s{$_} } //= time - $t_stopped;
        $fired{$_} = 1 if $s{$_} eq 'firing';
    }
    sleep 0.1;
}
for my $l (@LIVE) {
    my ($name, $k, $v) = @$l;
    ok($fired{$name}, "$name {$k=$v} fires after the primary stopped ("
       . join(', ', map { sprintf '%s at %.1f s', $_, $seen{$name}{$_} }
                    sort { $seen{$name}{$a} <=> $seen{$name}{$b} }
                    keys %{ $seen{$name} // {} }) . ')');
}
ok($seen{InventoryReplicationDisconnected}{pending},
   'InventoryReplicationDisconnected was pending (for:) before it fired');
my $t_fired = time;

# --- the end ---------------------------------------------------------------------
$F->stop;
stop_prometheus();
{
    my @errors = grep { /level=error/ } split /\n/,
                 slurp("$PDIR/prometheus.log") // '';
    ok(!@errors, 'no errors in the Prometheus log') or diag join "\n", @errors;
}
diag sprintf 'timings: start %.1f s, load %.1f s, scraped and evaluated '
             . '%.1f s, alerts %.1f s, total %.1f s',
             $t_load - $T0, $t_loaded - $t_load, $t_evaluated - $t_loaded,
             $t_fired - $t_stopped, time - $T0;

done_testing;
