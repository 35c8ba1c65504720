# The global event feed, GET /v1/events?after=SEQ&limit=N&wait=S: shape and
# query validation; order and gap-freeness under concurrent writers on two
# workers (paged and tailed live); paging edges; long polls woken by a
# write on either worker, timing out, held by the hundreds while other
# requests are served, abandoned by their clients, answered at a graceful
# stop and at a reload; seq going on across a restart.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use IO::Socket::INET;
use InvTest qw(item_ok problem_ok parallel encode_json decode_json json_type
               async_wait feed_pages replay_events TS_RE last_seq header);

# X-Worker tells which worker answered; X-Event-Seq is the seq of the last
# event a write appended ($inventory_event_seq)
my $n = InvTest->start(workers => 2, location_extra =>
    'add_header X-Worker $pid always; '
    . 'add_header X-Event-Seq $inventory_event_seq always;');

sub feed { $n->req(GET => '/v1/events' . (defined $_[0] ? "?$_[0]" : '')) }
sub ms { sprintf '%.0f', $_[0] * 1000 }

# event_problems($e): what is wrong with the shape of one feed event
sub event_problems {
    my ($e) = @_;
    return ('not an object') unless ref $e eq 'HASH';
    my @p;
    my %t = (seq => 'number', type => 'string', sku => 'string',
             location => 'string', version => 'number', at => 'string',
             data => 'object');
    for my $k (sort keys %t) {
        my $g = json_type($e->{$k});
        push @p, "'$k' is $g, expected $t{$k}" if $g ne $t{$k};
    }
    my @x = grep { !exists $t{$_} } sort keys %$e;
    push @p, "unexpected members @x" if @x;
    push @p, "at '" . ($e->{at} // '') . "' is not RFC 3339 UTC with ms"
        unless defined $e->{at} && !ref $e->{at} && $e->{at} =~ TS_RE;
    return @p;
}

# page_ok($r, $first_seq, $count, $last_seq, $name): a 200 feed page with
# $count events numbered from $first_seq and the given last_seq
sub page_ok {
    my ($r, $first, $count, $last, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status $r->{status}" unless $r->{status} == 200;
    push @p, "content-type '$r->{content_type}'"
        unless $r->{content_type} =~ m{^application/json\b}i;
    my $j = $r->{json};
    if (ref $j ne 'HASH' || ref $j->{events} ne 'ARRAY') {
        push @p, 'body is not {"events":[...], ...}';
    } else {
        my @x = grep { !/^(?:events|last_seq)\z/ } sort keys %$j;
        push @p, "unexpected members @x" if @x;
        push @p, 'last_seq is ' . json_type($j->{last_seq})
            unless json_type($j->{last_seq}) eq 'number';
        my @seq = map { ref $_ eq 'HASH' ? $_->{seq} // 'null' : '?' }
                  @{ $j->{events} };
        my @want = $count ? ($first .. $first + $count - 1) : ();
        push @p, "seqs (@seq), expected (@want)" if "@seq" ne "@want";
        push @p, 'last_seq is ' . ($j->{last_seq} // 'null')
                 . ", expected $last"
            unless defined $j->{last_seq} && $j->{last_seq} == $last;
        for my $e (@{ $j->{events} }) {
            my @e = event_problems($e);
            push @p, map { "event: $_" } @e;
            last if @e;
        }
    }
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n"
                           . InvTest::show($r);
}

# --- the empty log --------------------------------------------------------
page_ok(feed(), 1, 0, 0, 'empty log: {"events":[], "last_seq":0}');
page_ok(feed('after=0&limit=1'), 1, 0, 0, 'empty log, limit 1: empty page');
page_ok(feed('after=5'), 1, 0, 0,
        'empty log, after beyond the end: empty page, last_seq 0');
my $t = time;
my $r = feed('wait=1');
my $el = time - $t;
page_ok($r, 1, 0, 0, 'empty log, wait=1: empty page after the wait');
ok($el > 0.5 && $el < 4, 'empty log, wait=1 answered after ~1 s')
    or diag "took ${el}s";

# --- query validation -------------------------------------------------------
for my $c (['after=-1', 'after'], ['after=abc', 'after'], ['after=1.5', 'after'],
           ['after=', 'after'], ['after=1e3', 'after'],
           ['after=99999999999999999999999', 'after'],
           ['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=-5', 'limit'],
           ['limit=ten', 'limit'], ['limit=', 'limit'],
           ['wait=31', 'wait'], ['wait=-1', 'wait'], ['wait=1.5', 'wait'],
           ['wait=x', 'wait'], ['wait=', 'wait'])
{
    my ($q, $field) = @$c;
    $t = time;
    problem_ok(feed($q), 400, 'invalid-request', "?$q is 400 ($field)",
               field => $field);
    ok(time - $t < 5, "?$q answered at once (not after a wait)");
}
$r = feed('after=x&limit=0&wait=99');
problem_ok($r, 400, 'invalid-request', 'three bad arguments: 400');
my %f = map { ($_->{field} // '') => 1 }
        @{ ref $r->{json} eq 'HASH' ? $r->{json}{errors} // [] : [] };
ok($f{after} && $f{limit} && $f{wait}, '... naming after, limit and wait')
    or diag InvTest::show($r);
problem_ok($n->req(POST => '/v1/events', json => {}), 405,
           'method-not-allowed', 'POST /v1/events is 405', allow => ['GET']);

# --- concurrent writers on 2 workers, tailers following live ----------------
my $CHILDREN = 10;
my $PER = 30;
my $TAILERS = 2;
my $flags = $n->dir . '/writers';
mkdir $flags or die "mkdir $flags: $!";

$t = time;
my @out = parallel($CHILDREN + $TAILERS, sub {
    my ($i) = @_;
    if ($i >= $CHILDREN) {
        # a tailer: long polls from 0 until the writers are done and the
        # log is drained; checks each page as it comes
        my ($after, @bad, $pages, %workers) = (0);
        my $lim = 7 + $i;
        for (1 .. 5000) {
            my $done = () = glob("$flags/done-*");
            my $r = $n->req(GET => "/v1/events?after=$after&limit=$lim"
                                   . ($done == $CHILDREN ? '' : '&wait=3'));
            $pages++;
            $workers{ header($r, 'x-worker') // '?' }++;
            if ($r->{status} != 200 || ref $r->{json} ne 'HASH') {
                push @bad, InvTest::show($r);
                last;
            }
            my $ev = $r->{json}{events};
            push @bad, 'page of ' . @$ev . " events over limit $lim"
                if @$ev > $lim;
            if (!@$ev) {
                push @bad, "empty page after $after: last_seq "
                           . ($r->{json}{last_seq} // 'null')
                    if ($r->{json}{last_seq} // -1) != $after;
                last if $done == $CHILDREN;
                next;
            }
            for my $e (@$ev) {
                push @bad, "seq $e->{seq} after $after" if $e->{seq} != $after + 1;
                $after = $e->{seq};
            }
            push @bad, "last_seq $r->{json}{last_seq} is not $after"
                if $r->{json}{last_seq} != $after;
            last if @bad > 10;
        }
        return encode_json({ tailer => 1, last => $after, pages => $pages,
                             workers => scalar(keys %workers), bad => \@bad });
    }
    my @w;
    for my $k (1 .. $PER) {
        my $sku = 'F-' . ($k % 5);
        my $loc = 'loc-' . ($i % 3);
        my $p = "/v1/inventory/$sku/$loc";
        my $op = ($i + $k) % 3;
        my $r = $op == 0 ? $n->req(PUT => $p, json => { on_hand => 1 + $k % 7,
                                                       min_level => 5 })
              : $op == 1 ? $n->req(POST => "$p/adjustments",
                                   json => { delta => 3 })
              :            $n->req(POST => "$p/adjustments",
                                   json => { delta => -2 });
        my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
        push @w, [ $r->{status}, $sku, $loc, $j->{version},
                   header($r, 'x-event-seq'), header($r, 'x-worker') ];
    }
    open my $fh, '>', "$flags/done-$i";
    close $fh;
    return encode_json({ writes => \@w });
});
my $elapsed = time - $t;

my (@acked, %status, @tails, @bad, %wworkers);
for my $o (@out) {
    my $j = eval { decode_json($o) } or do { push @bad, "child: $o"; next };
    if ($j->{tailer}) { push @tails, $j; next }
    for my $w (@{ $j->{writes} }) {
        $status{ $w->[0] }++;
        $wworkers{ $w->[5] // '?' }++;
        if ($w->[0] == 200 || $w->[0] == 201) { push @acked, $w }
        elsif ($w->[0] != 404 && $w->[0] != 409) { push @bad, "write: @$w" }
    }
}
diag sprintf "%d writes in %.1f s: %s; acknowledged %d; writes served by "
             . "%d workers", $CHILDREN * $PER, $elapsed,
    join(', ', map { "$_ x$status{$_}" } sort keys %status), scalar @acked,
    scalar keys %wworkers;
ok(!@bad, 'writes answered 2xx, 404 or 409 only') or diag join "\n", @bad;
ok(@acked > $CHILDREN * $PER / 2, 'most writes were acknowledged');
is(scalar keys %wworkers, 2, 'writes were served by both workers');

my ($ev, $pp) = feed_pages($n, 0, 50);
ok(!@$pp, 'paging the whole feed with limit 50: seqs 1..N, no gap, no '
          . 'duplicate, pages within the limit')
    or diag join "\n", @$pp;
my $N = @$ev;
is($ev->[-1]{seq}, $N, "the last seq is N = $N");
my @shape = map { my $e = $_; map { "seq $e->{seq}: $_" } event_problems($e) }
            @$ev;
ok(!@shape, 'every event has exactly seq, type, sku, location, version, at, data')
    or diag join "\n", @shape[0 .. ($#shape > 10 ? 10 : $#shape)];
my $back = grep { $ev->[$_]{at} lt $ev->[$_ - 1]{at} } 1 .. $#$ev;
is($back, 0, '"at" never goes back along the log');

# the events implied by the acknowledged writes
my (%items, %by_seq);
$by_seq{ $_->{seq} } = $_ for @$ev;
push @{ $items{"$_->{sku}/$_->{location}"} }, $_ for @$ev;
my $vsum = 0;
my @rp;
for my $k (sort keys %items) {
    my ($sku, $loc) = split m{/}, $k;
    my $r = $n->req(GET => "/v1/inventory/$sku/$loc");
    $vsum += ref $r->{json} eq 'HASH' ? $r->{json}{version} // 0 : 0;
    my ($st, $p) = replay_events($items{$k}, $sku, $loc);
    push @rp, @$p;
    push @rp, "$k: replay of its feed events ($st->{on_hand}/$st->{reserved}/"
              . "$st->{min_level} v$st->{version}) is not the item: $r->{body}"
        unless ref $r->{json} eq 'HASH'
               && $r->{json}{on_hand} == $st->{on_hand}
               && $r->{json}{min_level} == $st->{min_level}
               && $r->{json}{version} == $st->{version}
               && $r->{json}{updated_at} eq $st->{updated_at};
}
is($N, $vsum, 'N equals the sum of the final versions of the items written');
my $primary = grep { $_->{type} ne 'LowStockDetected' } @$ev;
is($primary, scalar @acked,
   'one event other than LowStockDetected per acknowledged write');
ok(!@rp, "each item's feed events, in seq order, replay to the item "
         . '(versions 1, 2, ... with LowStockDetected where due)')
    or diag join "\n", @rp[0 .. ($#rp > 10 ? 10 : $#rp)];
my (@miss, %seen);
for my $w (@acked) {
    my ($st, $sku, $loc, $ver, $seq) = @$w;
    my $e = defined $seq ? $by_seq{$seq} : undef;
    push @miss, "write @$w[0..4]: " . ($e ? encode_json($e) : 'no such event')
        unless $e && $e->{sku} eq $sku && $e->{location} eq $loc
               && $e->{version} == $ver;
    push @miss, "seq $seq acknowledged twice" if defined $seq && $seen{$seq}++;
}
ok(!@miss, 'each acknowledged write names (X-Event-Seq) a distinct feed event '
           . 'of its item with the version it answered')
    or diag join "\n", @miss[0 .. ($#miss > 10 ? 10 : $#miss)];

is(scalar @tails, $TAILERS, 'both tailers finished');
for my $tl (@tails) {
    ok(!@{ $tl->{bad} } && $tl->{last} == $N,
       "a tailer long-polling during the writes saw seqs 1..$N in order, "
       . "no gap ($tl->{pages} pages)")
        or diag encode_json($tl);
}

# --- paging edges ---------------------------------------------------------------
page_ok(feed(), 1, $N < 100 ? $N : 100, $N < 100 ? $N : 100,
        'no arguments: the first 100 events (default limit)');
page_ok(feed('limit=1000'), 1, $N, $N, "limit=1000: all $N events");
page_ok(feed('after=0&limit=1'), 1, 1, 1, 'limit=1: seq 1, last_seq 1');
page_ok(feed('after=' . ($N - 10) . '&limit=10'), $N - 9, 10, $N,
        'exactly one page up to the end: 10 events, last_seq N');
page_ok(feed("after=$N&limit=10"), 1, 0, $N,
        'after=N: empty page, last_seq N');
page_ok(feed('after=' . ($N - 7) . '&limit=10'), $N - 6, 7, $N,
        'last page shorter than the limit');
page_ok(feed('after=' . ($N + 1000)), 1, 0, $N,
        'after beyond the end: empty page, last_seq is the current last');
page_ok(feed('after=9007199254740991'), 1, 0, $N,
        'after=2^53-1: empty page, last_seq is the current last');
page_ok(feed('after=' . ($N - 20) . '&limit=5'), $N - 19, 5, $N - 15,
        'a middle page: last_seq is its last event, not the log end');
$t = time;
page_ok(feed('after=' . ($N - 1) . '&wait=30'), $N, 1, $N,
        'wait=30 with an event after SEQ: answered with it ...');
ok(time - $t < 5, '... at once, not after the 30 s')
    or diag sprintf '%.2f s', time - $t;

# --- timeout ---------------------------------------------------------------------
$t = time;
$r = feed("after=$N&wait=2");
$el = time - $t;
page_ok($r, 1, 0, $N, 'nothing new within wait=2: empty page, last_seq N');
ok($el >= 1.5 && $el <= 5, 'answered after 2 s (-0.5, +3 on a busy host)')
    or diag "took ${el}s";
diag sprintf 'wait=2 timed out after %.3f s', $el;
$t = time;
$r = feed('after=' . ($N + 50) . '&wait=1');
$el = time - $t;
page_ok($r, 1, 0, $N, 'after beyond the end, wait=1: empty, last_seq N');
ok($el >= 0.5 && $el <= 4, '... after 1 s (-0.5, +3 on a busy host)')
    or diag "took ${el}s";

# --- long polls woken by a write on either worker ---------------------------------
my $seq = $N;
my $round = 0;
my (@same, @other, @wake_bad);
my $cross_rounds = 0;
while ($round < 12 && ($cross_rounds < 3 || $round < 4)) {
    $round++;
    my @h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=20"
                                       . ($_ == 0 ? '&limit=1' : '')) } 0 .. 5;
    sleep 0.3;
    async_wait(\@h, 0);
    if (my @early = grep { $_->{res} } @h) {
        push @wake_bad, "round $round: answered before any write: "
                        . InvTest::show($early[0]{res});
    }
    # a new low item: two events in one commit (StockCounted, LowStockDetected)
    my $w = $n->req(PUT => "/v1/inventory/W-$round/poll",
                    json => { on_hand => 1, min_level => 5 });
    my $tw = time;
    item_ok($w, 201, { version => 2 }, "round $round: the write") or last;
    my $ww = header($w, 'x-worker') // '?';
    async_wait(\@h, 5);
    my $cross = 0;
    for my $i (0 .. $#h) {
        my $x = $h[$i];
        my $res = $x->{res};
        if (!$res) {
            push @wake_bad, "round $round waiter $i: not answered 5 s after "
                            . 'the write';
            next;
        }
        my ($c, $l) = $i == 0 ? (1, $seq + 1) : (2, $seq + 2);
        my $evs = ref $res->{json} eq 'HASH' ? $res->{json}{events} : undef;
        my @s = map { $_->{seq} } @{ $evs // [] };
        push @wake_bad, "round $round waiter $i (limit " . ($i ? 100 : 1)
                        . "): seqs (@s), last_seq "
                        . ($res->{json}{last_seq} // 'null')
                        . ", expected $c event(s) from " . ($seq + 1)
                        . " and last_seq $l\n" . InvTest::show($res)
            unless $res->{status} == 200 && @s == $c && $s[0] == $seq + 1
                   && $res->{json}{last_seq} == $l
                   && $evs->[0]{sku} eq "W-$round";
        my $lat = $x->{done} - $tw;
        my $aw = header($res, 'x-worker') // '?';
        if ($aw eq $ww) { push @same, $lat } else { push @other, $lat; $cross = 1 }
    }
    $cross_rounds += $cross;
    $seq += 2;
}
ok(!@wake_bad, 'every waiter answered by the write with the new events '
               . '(limit=1: one event, last_seq its seq)')
    or diag join "\n", @wake_bad;
ok(@other >= 3, 'waiters on the other worker than the write were woken '
                . "(in $cross_rounds of $round rounds)")
    or diag "all waiters landed on the writer's worker";
my @all = (@same, @other);
my ($max) = sort { $b <=> $a } @all;
diag sprintf 'wake-up after the write\'s response, same worker (%d): %s ms; '
             . 'other worker (%d): %s ms', scalar @same,
    join(' ', map { ms($_) } sort { $a <=> $b } @same), scalar @other,
    join(' ', map { ms($_) } sort { $a <=> $b } @other);
ok(defined $max && $max < 2, 'every waiter woken within 2 s of the write '
                             . '(well before its wait=20; typically ms)')
    or diag 'max ' . ms($max // 0) . ' ms';

# a refused write appends nothing and wakes nobody; the module's own expiry
# (no request at all) wakes like any commit
my @h2 = map { $n->async_req(GET => "/v1/events?after=$seq&wait=20") } 1 .. 4;
sleep 0.3;
problem_ok($n->req(POST => '/v1/inventory/W-1/poll/adjustments',
                   json => { delta => -100 }), 409, 'insufficient-stock',
           'a refused write (409)');
problem_ok($n->req(POST => '/v1/inventory/NOPE/poll/adjustments',
                   json => { delta => -1 }), 404, 'not-found',
           'a refused write (404)');
async_wait(\@h2, 0.5);
is(scalar(grep { $_->{res} } @h2), 0, '... wake no waiter');
my $rv = $n->req(POST => '/v1/inventory/W-1/poll/reservations',
                 json => { quantity => 1, ttl_seconds => 1 });
is($rv->{status}, 201, 'a reservation with ttl 1 s');
async_wait(\@h2, 5);
ok(!grep({ !$_->{res} || $_->{res}{status} != 200
           || ($_->{res}{json}{events}[0]{type} // '') ne 'StockReserved' } @h2),
   '... wakes the waiters with StockReserved');
# from what they got, not the log now: the expiry may be in it already
$seq = $h2[0]{res} ? $h2[0]{res}{json}{last_seq} : last_seq($n);
@h2 = map { $n->async_req(GET => "/v1/events?after=$seq&wait=10") } 1 .. 4;
$t = time;
async_wait(\@h2, 8);
ok(!grep({ !$_->{res} || $_->{res}{status} != 200
           || ($_->{res}{json}{events}[0]{type} // '') ne 'ReservationExpired' } @h2),
   'the expiry sweep, with no request, wakes the next waiters with '
   . 'ReservationExpired')
    or diag join "\n", map { $_->{res} ? InvTest::show($_->{res}) : 'none' } @h2;
diag sprintf 'expiry woke the waiters %.2f s after they came', time - $t;
$seq = last_seq($n);

# a waiter after a seq beyond the end wakes only for an event past it
@h2 = map { $n->async_req(GET => '/v1/events?after=' . ($seq + 2) . '&wait=10') }
      1 .. 2;
sleep 0.3;
for my $k (1 .. 2) {
    $n->req(POST => '/v1/inventory/W-1/poll/adjustments', json => { delta => 1 });
}
async_wait(\@h2, 0.5);
is(scalar(grep { $_->{res} } @h2), 0,
   'a waiter after SEQ+2: not woken by events SEQ+1 and SEQ+2');
$n->req(POST => '/v1/inventory/W-1/poll/adjustments', json => { delta => 1 });
async_wait(\@h2, 5);
ok(!grep({ !$_->{res} || $_->{res}{status} != 200
           || join(',', map { $_->{seq} } @{ $_->{res}{json}{events} // [] })
              ne $seq + 3 } @h2),
   '... woken by SEQ+3, with just that event');
$seq += 3;

# long polls on a keep-alive connection: the connection serves the next
# request after a woken wait and after a timed-out one
sub ka_read {
    my ($s, $timeout) = @_;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $end = time + $timeout;
    while (time < $end && $sel->can_read($end - time)) {
        my $k = sysread $s, $buf, 65536, length $buf;
        last unless $k;
        if ($buf =~ /\r\n\r\n/ && $buf =~ /^Content-Length:\s*(\d+)/mi) {
            my $need = index($buf, "\r\n\r\n") + 4 + $1;
            return substr($buf, 0, $need) if length $buf >= $need;
        }
    }
    return $buf;
}
my $ka = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $n->port,
                               Proto => 'tcp') or die "connect: $!";
my $H = 'Host: 127.0.0.1:' . $n->port;
syswrite $ka, "GET /v1/events?after=$seq&wait=10 HTTP/1.1\r\n$H\r\n\r\n";
sleep 0.3;
$n->req(POST => '/v1/inventory/W-1/poll/adjustments', json => { delta => 1 });
my $a1 = ka_read($ka, 5);
like($a1, qr/\AHTTP\/1\.1 200 .*"seq":@{[ $seq + 1 ]},/s,
     'keep-alive: a woken long poll answers 200 with the event');
unlike($a1, qr/^Connection: close/mi, '... and keeps the connection');
$seq++;
syswrite $ka, "GET /v1/events?after=$seq&wait=1 HTTP/1.1\r\n$H\r\n\r\n";
my $a2 = ka_read($ka, 5);
like($a2, qr/\AHTTP\/1\.1 200 .*"events":\[\],"last_seq":$seq\}/s,
     'keep-alive: the next request on it, a long poll, times out with an '
     . 'empty page');
syswrite $ka, "GET /v1/events?after=0&limit=1 HTTP/1.1\r\n$H\r\n"
              . "Connection: close\r\n\r\n";
my $a3 = ka_read($ka, 5);
like($a3, qr/\AHTTP\/1\.1 200 .*"seq":1,/s, '... and a third request is served');
close $ka;

# --- hundreds of waiters held; other requests still served -------------------------
my $HOLD = 200;
my @h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=25") } 1 .. $HOLD;
sleep 0.5;
async_wait(\@h, 0);
is(scalar(grep { $_->{res} } @h), 0, "$HOLD waiters held (none answered)");
my (@lat, @gbad);
for my $k (1 .. 30) {
    my $path = $k % 3 == 0 ? '/v1/events?after=0&limit=5'
             : $k % 3 == 1 ? '/v1/inventory/W-1/poll' : '/v1/health';
    my $t0 = time;
    my $g = $n->req(GET => $path);
    push @lat, time - $t0;
    push @gbad, InvTest::show($g) unless $g->{status} == 200;
}
($max) = sort { $b <=> $a } @lat;
ok(!@gbad, "30 GETs (item, feed without wait, health) answered 200 while "
           . "$HOLD waiters are held") or diag join "\n", @gbad;
ok($max < 3, '... each within 3 s (not held behind the waiters)');
diag sprintf "GETs while $HOLD waiters are held: max %s ms, median %s ms",
    ms($max), ms((sort { $a <=> $b } @lat)[@lat / 2]);
async_wait(\@h, 0);
is(scalar(grep { $_->{res} } @h), 0, '... and the waiters are still held');
my $w = $n->req(POST => '/v1/inventory/W-1/poll/adjustments',
                json => { delta => 1 });
my $tw = time;
item_ok($w, 200, {}, 'one write');
async_wait(\@h, 10);
my @wrong = grep { !$_->{res} || $_->{res}{status} != 200
                   || ref $_->{res}{json} ne 'HASH'
                   || @{ $_->{res}{json}{events} // [] } != 1
                   || $_->{res}{json}{events}[0]{seq} != $seq + 1
                   || $_->{res}{json}{last_seq} != $seq + 1 } @h;
is(scalar @wrong, 0, "all $HOLD waiters woken by the one write, each with "
                     . 'its event')
    or diag scalar(@wrong) . ' wrong, e.g. '
            . ($wrong[0]{res} ? InvTest::show($wrong[0]{res}) : 'no answer');
my @d = sort { $a <=> $b } map { $_->{done} - $tw } grep { $_->{res} } @h;
diag sprintf "$HOLD waiters woken: first %s ms, median %s ms, last %s ms "
             . 'after the write', ms($d[0]), ms($d[@d / 2]), ms($d[-1]);
ok(@d && $d[-1] < 3, "... all within 3 s (well before their wait=25)");
$seq++;

# --- waiters whose clients go away ------------------------------------------------
@h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=20") } 1 .. 20;
sleep 0.3;
close $_->{sock} for @h[0 .. 9];
delete $_->{sock} for @h[0 .. 9];
sleep 0.2;
item_ok($n->req(POST => '/v1/inventory/W-1/poll/adjustments',
                json => { delta => 1 }), 200, {}, 'a write after 10 of 20 '
                                                  . 'waiters hung up');
@h = @h[10 .. 19];
async_wait(\@h, 5);
is(scalar(grep { $_->{res} && $_->{res}{status} == 200
                 && @{ $_->{res}{json}{events} // [] } == 1 } @h), 10,
   'the 10 remaining waiters are answered');
$seq++;
# clients gone before their (short) wait ends: nothing fires on them later
@h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=1") } 1 .. 10;
sleep 0.2;
close $_->{sock} for @h;
sleep 1.3;
page_ok(feed("after=$seq"), 1, 0, $seq, 'the feed still answers after '
                                        . 'short waits of gone clients ended');
$n->check_log('after abandoned waiters');

# --- a graceful reload answers the waiters of the old workers ----------------------
@h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=30") } 1 .. 6;
sleep 0.3;
$t = time;
$n->reload;
async_wait(\@h, 10);
$el = time - $t;
my @ans = grep { $_->{res} } @h;
is(scalar @ans, 6, 'waiters held over a reload are answered') or diag "${el}s";
ok(!grep({ $_->{res}{status} != 200
           || @{ $_->{res}{json}{events} // [1] } != 0
           || $_->{res}{json}{last_seq} != $seq } @ans),
   '... with an empty page and last_seq (not cut off)')
    or diag join "\n", map { InvTest::show($_->{res}) } @ans;
ok(@ans && (sort { $b <=> $a } map { $_->{done} - $t } @ans)[0] < 5,
   '... well before their wait of 30 s');
diag sprintf 'reload: waiters answered within %.2f s',
    (sort { $b <=> $a } map { $_->{done} - $t } @ans)[0] // -1;

# --- restart: a graceful stop answers waiters; seq goes on ------------------------
my ($before) = feed_pages($n, 0, 1000);
@h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=30") } 1 .. 4;
sleep 0.3;
$t = time;
$n->stop;
my $stop = time - $t;
async_wait(\@h, 2, close => 1);
ok($stop < 5, sprintf 'a graceful stop with waiters held takes %.2f s, not '
                      . 'their wait of 30 s', $stop);
ok(!grep({ !$_->{res} || $_->{res}{status} != 200 } @h),
   '... and the waiters got 200 with an empty page')
    or diag join "\n", map { $_->{res} ? InvTest::show($_->{res}) : 'none' } @h;
$n->restart;
my ($after, $ap) = feed_pages($n, 0, 1000);
ok(!@$ap, 'after a restart the feed pages cleanly') or diag join "\n", @$ap;
is_deeply($after, $before, 'after a restart the feed is the same, event for event');
@h = map { $n->async_req(GET => "/v1/events?after=$seq&wait=20") } 1 .. 4;
sleep 0.3;
$w = $n->req(POST => '/v1/inventory/W-2/poll/adjustments', json => { delta => 1 });
$tw = time;
item_ok($w, 200, {}, 'a write after the restart');
is(header($w, 'x-event-seq'), $seq + 1, '... gets the next seq, ' . ($seq + 1));
async_wait(\@h, 5);
@d = map { $_->{done} - $tw } grep { $_->{res} } @h;
ok(@d == 4 && !grep({ $_->{res}{status} != 200
                      || $_->{res}{json}{events}[0]{seq} != $seq + 1 } @h),
   '... and wakes the waiters held after the restart');
diag 'after the restart, waiters woken after ' . join(' ', map { ms($_) } @d)
     . ' ms';
page_ok(feed("after=$seq"), $seq + 1, 1, $seq + 1, 'the feed shows it');

$n->stop;
done_testing;
