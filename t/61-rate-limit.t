# conf/rate-limit.conf, as it stands (placeholders filled in): limit_req on
# writes per client ($binary_remote_addr) and per SKU ($inventory_sku),
# reads never limited, a 429 answered as problem+json with Retry-After, a
# rejected write changes nothing, and writes pass again after a pause.
#
# The whole of 127.0.0.0/8 is local on Linux: each part below binds its
# clients to addresses of their own, so every per-client bucket starts
# empty and the per-client limit can be told apart from the per-SKU limit.
# The limits are 2r/s burst=4 per client and 1r/s burst=2 per SKU.  What is
# asserted holds on a slow machine: the first burst + 1 writes of a new key
# always pass, a 429 is only expected within many writes in a row (it would
# take about a second per request to miss it), and the pause only drains
# the buckets.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);
use InvTest qw(problem_ok item_ok encode_json decode_json);

my $T0 = time;

my $n = InvTest->start(conf => InvTest::example_conf('rate-limit.conf'));

# from($addr, $method, $path, json => ...): a request from a client bound
# to $addr, in the shape $n->req returns
sub from {
    my ($addr, $method, $path, %o) = @_;
    return $n->req($method, $path, %o, from => $addr);
}

sub adjust {
    my ($addr, $sku, $loc) = @_;
    return from($addr, POST => "/v1/inventory/$sku/$loc/adjustments",
                json => { delta => 1 });
}

# the exact problem body nginx answers for a rejected write
sub rate_limited_ok {
    my ($r, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = problem_ok($r, 429, 'rate-limited', "$name: problem+json");
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    is(join(',', sort keys %$j), 'code,detail,status,title,type',
       "$name: the members of a module problem, no more") or $ok = 0;
    is($j->{type}, 'urn:inventory:problem:rate-limited', "$name: type")
        or $ok = 0;
    like($r->{headers}{'retry-after'} // '', qr/^[1-9][0-9]*\z/,
         "$name: Retry-After is a number of seconds") or $ok = 0;
    diag InvTest::show($r) unless $ok;
    return $ok;
}

sub is_2xx { $_[0]{status} == 200 || $_[0]{status} == 201 }

sub error_log_names {
    my ($zone, $addr) = @_;
    my $re = qr/limiting requests, excess: \S+ by zone "\Q$zone\E", /;
    return $n->error_log =~ /${re}client: \Q$addr\E,/;
}

# --- a burst of writes from one client ---------------------------------------
# 20 PUTs in a row on one item, on_hand 1, 2, ..., 20.  The location ends in
# ".html": the 429 must be problem+json even where nginx's MIME types would
# say text/html.
my $BURST = '/v1/inventory/BURST-1/bin.html';
my (@ok, @limited, @other);
for my $i (1 .. 20) {
    my $r = from('127.0.0.1', PUT => $BURST, json => { on_hand => $i });
    $r->{on_hand} = $i;
    if ($r->{status} == 429) { push @limited, $r }
    elsif (is_2xx($r))       { push @ok, $r }
    else                     { push @other, $r }
}
cmp_ok(scalar @limited, '>=', 1, 'a burst of 20 writes gets some 429s')
    or diag 'statuses: ' . join ' ', map { $_->{status} } @ok, @other;
cmp_ok(scalar @ok, '>=', 3, '... and the first 3 (burst 2 + 1) pass');
is(scalar @other, 0, 'every write that is not a 429 is a 2xx')
    or diag InvTest::show($other[0]);
rate_limited_ok($limited[0], 'burst 429') if @limited;
rate_limited_ok($limited[-1], 'last burst 429') if @limited > 1;
is($ok[0]{status}, 201, 'the first write created the item') if @ok;

# nothing of a rejected write reached the store: the item is the last
# accepted PUT's, its version counts the accepted ones
my $accepted = @ok;
my $last_ok = @ok ? $ok[-1]{on_hand} : 0;
item_ok($n->req(GET => $BURST), 200,
        { on_hand => $last_ok, version => $accepted },
        "the item is the last accepted write's (on_hand $last_ok), version "
        . "$accepted: the 429s changed nothing");
my $ev = eval { InvTest::item_events($n, 'BURST-1', 'bin.html') } // [];
diag $@ if $@;
is(scalar @$ev, $accepted, 'one event per accepted write, none for a 429');

# the 429s are the module's requests, though a named location answered
# them: /metrics counts them for their route (when they are logged)
{
    my $want = scalar @limited;
    my $got;
    for (1 .. 200) {
        my $m = $n->req(GET => '/metrics')->{body} // '';
        ($got) = $m =~ /^inventory_requests_total\{route="item",status="429"\} (\d+)$/m;
        last if ($got // 0) >= $want;
        select undef, undef, undef, 0.05;
    }
    is($got, $want, "/metrics counts the $want 429s of route item");
}

# --- per SKU: one SKU limited across clients, other SKUs go on ---------------
# Up to 40 clients, each new to the server, write HOT-1 once each: no
# per-client bucket can refuse a single write, so the 429 that comes once
# HOT-1's bucket is full (burst 2 + 1) can only be the per-SKU limit.
my ($B, $b429, $hot_ok) = (undef, undef, 0);
for my $i (10 .. 49) {
    my $addr = "127.0.0.$i";
    my $r = adjust($addr, 'HOT-1', 's1');
    if ($r->{status} == 429) { ($B, $b429) = ($addr, $r); last }
    is_2xx($r) ? $hot_ok++ : diag InvTest::show($r);
}
ok($b429, "HOT-1 written by one new client after another: refused after "
          . "$hot_ok, the SKU is limited for every client");
cmp_ok($hot_ok, '>=', 3, '... not before burst 2 + 1 writes passed');
$B //= '127.0.0.49';
rate_limited_ok($b429, 'per-SKU 429') if $b429;
ok(error_log_names('inventory_sku', $B),
   "the error log names zone inventory_sku for client $B")
    or diag $n->error_log;
ok(!error_log_names('inventory_client', $B),
   '... and not the per-client zone');

my $r = adjust($B, 'COLD-1', 's1');
is($r->{status}, 201, 'the refused client writes another SKU right away: '
                      . '201') or diag InvTest::show($r);
$r = adjust('127.0.0.5', 'COLD-2', 's1');
is($r->{status}, 201, 'another client writes a third SKU: 201')
    or diag InvTest::show($r);
item_ok($n->req(GET => '/v1/inventory/HOT-1/s1'), 200,
        { on_hand => $hot_ok, version => $hot_ok },
        'HOT-1 holds the accepted writes only');

# --- per client: one client limited across SKUs, other clients go on ---------
# Client D writes up to 60 different SKUs once each (no SKU bucket can
# fill), so only its own bucket (burst 4 + 1) can refuse it.
my $D = '127.0.0.6';
my ($d429, $d_ok) = (undef, 0);
for my $i (1 .. 60) {
    my $r = adjust($D, "SPREAD-$i", 's1');
    if ($r->{status} == 429) { $d429 = $r; last }
    is_2xx($r) ? $d_ok++ : diag InvTest::show($r);
}
ok($d429, "client D writing different SKUs is refused (after $d_ok)");
cmp_ok($d_ok, '>=', 5, '... not before burst 4 + 1 writes passed');
rate_limited_ok($d429, 'per-client 429') if $d429;
ok(error_log_names('inventory_client', $D),
   'the error log names zone inventory_client for client D')
    or diag $n->error_log;
ok(!error_log_names('inventory_sku', $D), '... and not the per-SKU zone');
my $d_last = $d_ok + 1;
problem_ok($n->req(GET => "/v1/inventory/SPREAD-$d_last/s1"), 404,
           'not-found', 'the refused write created nothing');

$r = adjust('127.0.0.7', 'SPREAD-1', 's1');
is($r->{status}, 200, 'another client writes a SKU client D wrote: 200')
    or diag InvTest::show($r);

# --- reads are never limited -------------------------------------------------
# Client D was just refused a write: 40 reads in a row, of every kind, pass.
my @reads = ((map { [GET => '/v1/inventory/SPREAD-1/s1'],
                    [HEAD => '/v1/inventory/SPREAD-1/s1'] } 1 .. 15),
             [GET => '/v1/inventory/SPREAD-1'],
             [GET => '/v1/inventory/SPREAD-1/s1/events'],
             [GET => '/v1/inventory/HOT-1/s1'],
             [GET => $BURST],
             [GET => '/v1/events?after=0&limit=5'],
             [GET => '/v1/low-stock'],
             [GET => '/v1/health'],
             [HEAD => '/v1/health'],
             [GET => '/metrics'],
             [GET => '/metrics']);
my @bad = grep { $_->{status} != 200 }
          map { from($D, @$_) } @reads;
is(scalar @bad, 0, scalar(@reads) . ' reads from a write-limited client '
                   . 'all answer 200')
    or diag InvTest::show($bad[0]);

# A new client reads 40 times, then writes 5 SKUs: reads used none of its
# write budget (burst 4 + 1 writes pass at once).
my $F = '127.0.0.8';
@bad = grep { $_->{status} != 200 }
       map { from($F, GET => '/v1/inventory/HOT-1/s1') } 1 .. 40;
is(scalar @bad, 0, 'client F: 40 reads of HOT-1, all 200')
    or diag InvTest::show($bad[0]);
my @fw = map { adjust($F, "FRESH-$_", 's1') } 1 .. 5;
is(join(' ', map { $_->{status} } @fw), '201 201 201 201 201',
   'client F then writes 5 SKUs at once: reads did not use its budget');

# --- after a pause, writes pass again ----------------------------------------
# 3.5 s drains both buckets (1r/s with burst 2, 2r/s with burst 4).
sleep 3.5;
$r = from('127.0.0.1', PUT => $BURST, json => { on_hand => 100 });
item_ok($r, 200, { on_hand => 100, version => $accepted + 1 },
        'after a pause the first client writes the burst item again');
$r = adjust($B, 'HOT-1', 's1');
item_ok($r, 200, { on_hand => $hot_ok + 1 },
        'the client refused on HOT-1 writes it again');
$r = adjust($D, 'SPREAD-61', 's1');
is($r->{status}, 201, 'client D writes again') or diag InvTest::show($r);

$n->stop;
diag sprintf 'took %.1f s', time - $T0;
done_testing;
