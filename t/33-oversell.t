# Oversell under contention: racing reservations and carts never hold more
# than on_hand, a reservation ends exactly once however many clients race to
# end it, and concurrent retries of one Idempotency-Key change the state
# exactly once.  Backorders: racing reservations take available down to
# exactly -backorder_limit, never further; racing commits of backordered
# holds, while receipts arrive, never ship more than is on hand (the log
# replayed by the model's rules), and every acknowledged write is in the
# final state.  4 workers, up to 40 forked clients, no 5xx anywhere.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use IO::Select;
use InvTest qw(item_ok parallel encode_json decode_json event_pages
               metric_value sleep_until);

my $n = InvTest->start(workers => 4);
my $T0 = time;

# $st: "201" or "409 insufficient-stock" style key for tallies
sub outcome {
    my ($r) = @_;
    my $k = $r->{status};
    $k .= ' ' . ($r->{json}{code} // '?')
        if $r->{status} >= 400 && ref $r->{json} eq 'HASH';
    return $k;
}

# children return JSON; a child that died or wrote garbage is a failure
sub collect {
    my ($what, @out) = @_;
    my (@j, @bad);
    for my $s (@out) {
        my $j = eval { decode_json($s) };
        if (ref $j eq 'HASH') { push @j, $j } else { push @bad, "$what child: $s" }
    }
    return (\@j, \@bad);
}

sub tally { my %t; $t{$_}++ for @_; join ', ', map { "$_ x$t{$_}" } sort keys %t }

# --- (a) N=50, 200 racing single-unit reservations, 3 rounds ----------------
for my $round (1 .. 3) {
    my $sku = "OS-$round";
    my $P = "/v1/inventory/$sku/hub";
    item_ok($n->req(PUT => $P, json => { on_hand => 50 }), 201,
            { on_hand => 50, version => 1 }, "(a$round) setup: on_hand 50");

    my $go = time + 0.6;
    my $t = time;
    my ($res, $bad) = collect("(a$round)", parallel(40, sub {
        my (@ids, @st, @bad);
        sleep_until($go);
        for (1 .. 5) {
            my $r = $n->req(POST => "$P/reservations",
                            json => { quantity => 1, ttl_seconds => 3600 });
            my $o = outcome($r);
            push @st, $o;
            my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
            if ($o eq '201') {
                my $l = ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [];
                push @bad, 'bad 201: ' . InvTest::show($r)
                    unless defined $j->{id} && ($j->{state} // '') eq 'active'
                           && @$l == 1 && ($l->[0]{quantity} // 0) == 1
                           && ($l->[0]{sku} // '') eq $sku;
                push @ids, $j->{id};
            } elsif ($o eq '409 insufficient-stock') {
                push @bad, '409 with available != 0: ' . InvTest::show($r)
                    unless ($j->{available} // -1) == 0;
            } else {
                push @bad, InvTest::show($r);
            }
        }
        return encode_json({ ids => \@ids, st => \@st, bad => \@bad });
    }));
    my @st = map { @{ $_->{st} } } @$res;
    my @ids = map { @{ $_->{ids} } } @$res;
    push @$bad, map { @{ $_->{bad} } } @$res;
    diag sprintf "(a%d) %.2f s: %s", $round, time - $t, tally(@st);

    is(scalar(@st), 200, "(a$round) 200 answers");
    is(scalar(grep { $_ eq '201' } @st), 50, "(a$round) exactly 50 got 201");
    is(scalar(grep { $_ eq '409 insufficient-stock' } @st), 150,
       "(a$round) the other 150 got 409 insufficient-stock");
    ok(!grep({ /^5/ } @st), "(a$round) no 5xx");
    ok(!@$bad, "(a$round) every answer well-formed")
        or diag join "\n", @$bad[0 .. ($#$bad > 10 ? 10 : $#$bad)];
    my %u = map { $_ => 1 } @ids;
    is(scalar(keys %u), scalar(@ids), "(a$round) reservation ids are unique");

    item_ok($n->req(GET => $P), 200,
            { on_hand => 50, reserved => 50, available => 0, version => 51 },
            "(a$round) final: reserved 50, available 0, version 51");

    my ($ev, $pp) = event_pages($n, $sku, 'hub', 1000);
    my @resv = grep { $_->{type} eq 'StockReserved' } @$ev;
    my %evid = map { $_->{data}{reservation_id} => 1 } @resv;
    ok(!@$pp && @$ev == 51 && @resv == 50
       && !grep({ $_->{data}{quantity} != 1 } @resv)
       && join(' ', sort keys %evid) eq join(' ', sort keys %u),
       "(a$round) the log holds exactly the 50 acknowledged reservations")
        or diag explain { problems => $pp, events => scalar(@$ev),
                          reserved_events => scalar(@resv) };
}

# --- (b) overlapping random carts over 5 small items -------------------------
{
    my %stock = ('CART-1' => 7, 'CART-2' => 5, 'CART-3' => 9, 'CART-4' => 4,
                 'CART-5' => 6);
    my @skus = sort keys %stock;
    for my $s (@skus) {
        item_ok($n->req(PUT => "/v1/inventory/$s/hub",
                        json => { on_hand => $stock{$s} }), 201,
                { on_hand => $stock{$s} }, "(b) setup: $s at $stock{$s}");
    }
    my $seed = $ENV{SEED} // int(rand(1e9));
    diag "(b) seed $seed";

    my $go = time + 0.6;
    my $t = time;
    my ($res, $bad) = collect('(b)', parallel(30, sub {
        my ($i) = @_;
        srand($seed + 7919 * ($i + 1));
        my (@won, @st, @bad);
        sleep_until($go);
        for (1 .. 6) {
            my @lines = map { { sku => $skus[rand @skus], location => 'hub',
                                quantity => 1 + int rand 3 } }
                        1 .. 1 + int rand 3;
            # sometimes name one item twice
            $lines[-1]{sku} = $lines[0]{sku} if @lines > 1 && rand() < 0.35;
            my %want;
            $want{ $_->{sku} } += $_->{quantity} for @lines;

            my $r = $n->req(POST => '/v1/reservations',
                            json => { lines => \@lines, ttl_seconds => 3600 });
            my $o = outcome($r);
            push @st, $o;
            my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
            if ($o eq '201') {
                my $got = join ' ', map { "$_->{sku}/$_->{location}=$_->{quantity}" }
                                    @{ ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [] };
                my $sent = join ' ', map { "$_->{sku}/hub=$_->{quantity}" } @lines;
                push @bad, "201 lines ($got), sent ($sent)" if $got ne $sent;
                push @won, { id => $j->{id}, lines => $j->{lines} };
            } elsif ($o eq '409 insufficient-stock') {
                my $short = ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [];
                push @bad, '409 names no line: ' . InvTest::show($r) unless @$short;
                my %named;
                for my $l (@$short) {
                    my $s = $l->{sku} // '?';
                    $named{$s} = 1;
                    push @bad, "409 names $s/" . ($l->{location} // '?')
                               . " quantity " . ($l->{quantity} // '?')
                               . " available " . ($l->{available} // '?')
                               . ", the cart wants " . ($want{$s} // 0)
                        unless defined $want{$s}
                               && ($l->{location} // '') eq 'hub'
                               && ($l->{quantity} // -1) == $want{$s}
                               && defined $l->{available}
                               && $l->{available} >= 0
                               && $l->{available} < $want{$s};
                }
                # a line that wants more than the item ever had is short
                for my $s (sort keys %want) {
                    push @bad, "409 does not name $s, which wants $want{$s} "
                               . "of $stock{$s}: " . $r->{body}
                        if $want{$s} > $stock{$s} && !$named{$s};
                }
            } else {
                push @bad, InvTest::show($r);
            }
        }
        return encode_json({ won => \@won, st => \@st, bad => \@bad });
    }));
    my @st = map { @{ $_->{st} } } @$res;
    my @won = map { @{ $_->{won} } } @$res;
    push @$bad, map { @{ $_->{bad} } } @$res;
    diag sprintf "(b) %.2f s: %s", time - $t, tally(@st);

    is(scalar(@st), 180, '(b) 180 answers');
    ok(!grep({ !/^(?:201|409 insufficient-stock)\z/ } @st),
       '(b) every answer is 201 or 409 insufficient-stock (no 5xx)');
    ok(!@$bad, '(b) 201s echo their lines; 409s name exactly the short items')
        or diag join "\n", @$bad[0 .. ($#$bad > 10 ? 10 : $#$bad)];
    ok(scalar(@won) > 0, '(b) some carts won (' . scalar(@won) . ')');

    my (%sum, %nlines, %evwant);
    for my $w (@won) {
        for my $l (@{ $w->{lines} }) {
            $sum{ $l->{sku} } += $l->{quantity};
            $nlines{ $l->{sku} }++;
            push @{ $evwant{ $l->{sku} } }, "$w->{id}=$l->{quantity}";
        }
    }
    for my $s (@skus) {
        my $r = $n->req(GET => "/v1/inventory/$s/hub");
        item_ok($r, 200, { on_hand => $stock{$s}, reserved => $sum{$s} // 0,
                           version => 1 + ($nlines{$s} // 0) },
                "(b) $s: reserved = sum of the won carts' lines on it ("
                . ($sum{$s} // 0) . " of $stock{$s}), one event per line");
        my ($ev, $pp) = event_pages($n, $s, 'hub', 7);
        my @got = sort map { "$_->{data}{reservation_id}=$_->{data}{quantity}" }
                  grep { $_->{type} eq 'StockReserved' } @$ev;
        my @want = sort @{ $evwant{$s} // [] };
        ok(!@$pp && "@got" eq "@want" && @$ev == 1 + @want,
           "(b) $s: the log holds exactly the won carts' lines")
            or diag explain { problems => $pp, got => \@got, want => \@want };
    }
}

# --- (c) many clients race to end one reservation ----------------------------
{
    item_ok($n->req(PUT => "/v1/inventory/END-$_/hub",
                    json => { on_hand => 1000 }), 201, {},
            "(c) setup: END-$_") for 1, 2;
    my @plans = (
        [ 'mixed',   sub { $_[0] % 2 ? 'commit' : 'release' } ],
        [ 'commits', sub { 'commit' } ],
        [ 'releases', sub { 'release' } ],
        [ 'mixed',   sub { $_[0] % 3 ? 'release' : 'commit' } ],
        [ 'commits', sub { 'commit' } ],
        [ 'mixed',   sub { $_[0] % 2 ? 'release' : 'commit' } ],
    );
    my $round = 0;
    for my $plan (@plans) {
        $round++;
        my ($label, $pick) = @$plan;
        my $cart = $round % 2 == 0;
        my @before = map { $n->req(GET => "/v1/inventory/END-$_/hub")->{json} } 1, 2;
        my $r = $cart
            ? $n->req(POST => '/v1/reservations', json => { lines => [
                  { sku => 'END-1', location => 'hub', quantity => 2 },
                  { sku => 'END-2', location => 'hub', quantity => 1 },
                  { sku => 'END-1', location => 'hub', quantity => 1 } ] })
            : $n->req(POST => '/v1/inventory/END-1/hub/reservations',
                      json => { quantity => 3 });
        is($r->{status}, 201, "(c$round) reservation created")
            or diag InvTest::show($r);
        my $id = $r->{json}{id} // 'none';

        my $go = time + 0.5;
        my @out = parallel(20, sub {
            my ($i) = @_;
            my $op = $pick->($i);
            sleep_until($go);
            my $r = $n->req(POST => "/v1/reservations/$id/$op");
            return encode_json({ op => $op, o => outcome($r),
                                 state => ref $r->{json} eq 'HASH'
                                          ? $r->{json}{state} : undef,
                                 show => InvTest::show($r) });
        });
        my ($res, $bad) = collect("(c$round)", @out);
        my @win = grep { $_->{o} eq '200' } @$res;
        my @lose = grep { $_->{o} eq '409 reservation-not-active' } @$res;
        is(scalar(@win), 1, "(c$round) 20 racing ends ($label): exactly one 200")
            or diag tally(map { $_->{o} } @$res);
        is(scalar(@lose), 19, "(c$round) ... the other 19 are 409 "
                              . "reservation-not-active")
            or diag join "\n", map { $_->{show} } grep { $_->{o} !~ /^(?:200|409 r)/ } @$res;
        ok(!@$bad, "(c$round) no child failed") or diag join "\n", @$bad;
        next unless @win == 1;
        my $final = $win[0]{op} eq 'commit' ? 'committed' : 'released';
        is($win[0]{state}, $final, "(c$round) the winner's answer says $final");
        ok(!grep({ ($_->{state} // '') ne $final } @lose),
           "(c$round) every 409 reports state $final");
        is($n->req(GET => "/v1/reservations/$id")->{json}{state}, $final,
           "(c$round) GET agrees: $final");

        my %q = $cart ? (1 => 3, 2 => 1) : (1 => 3);
        my %lines = $cart ? (1 => 2, 2 => 1) : (1 => 1);
        for my $k (sort keys %q) {
            my $b = $before[$k - 1];
            item_ok($n->req(GET => "/v1/inventory/END-$k/hub"), 200, {
                        reserved => 0,
                        on_hand => $b->{on_hand}
                                   - ($final eq 'committed' ? $q{$k} : 0),
                        version => $b->{version} + 2 * $lines{$k} },
                    "(c$round) END-$k: ended once (one event per line to "
                    . "reserve, one to end)");
            my ($ev, $pp) = event_pages($n, "END-$k", 'hub', 1000);
            my @ends = grep { $_->{type} =~ /^Reservation/
                              && $_->{data}{reservation_id} eq $id } @$ev;
            my $type = $final eq 'committed' ? 'ReservationCommitted'
                                             : 'ReservationReleased';
            ok(!@$pp && @ends == $lines{$k}
               && !grep({ $_->{type} ne $type } @ends),
               "(c$round) END-$k: $lines{$k} $type event(s), no other end")
                or diag explain [ map { "$_->{type} $_->{data}{quantity}" } @ends ];
        }
    }
}

# --- (d) 20 clients retry one Idempotency-Key at once -------------------------
{
    my $P = '/v1/inventory/IDEM-1/hub';
    item_ok($n->req(PUT => $P, json => { on_hand => 10 }), 201, {},
            '(d) setup: IDEM-1 at 10');
    my $replays0 = metric_value($n, 'inventory_idempotent_replays_total') // 0;
    my $replayed = 0;

    # [label, method, path, body, check(before, after, original response)]
    my @cases;
    push @cases, [ "adjustment $_", POST => "$P/adjustments", { delta => 1 },
                   200, sub {
                       my ($b, $a) = @_;
                       $a->{on_hand} == $b->{on_hand} + 1
                       && $a->{version} == $b->{version} + 1
                       && $a->{reserved} == $b->{reserved};
                   } ] for 1 .. 6;
    push @cases, [ "reservation $_", POST => "$P/reservations",
                   { quantity => 2, ttl_seconds => 3600 }, 201, sub {
                       my ($b, $a) = @_;
                       $a->{reserved} == $b->{reserved} + 2
                       && $a->{version} == $b->{version} + 1
                       && $a->{on_hand} == $b->{on_hand};
                   } ] for 1 .. 3;

    my $k = 0;
    for my $c (@cases) {
        my ($label, $method, $path, $body, $want, $check) = @$c;
        $k++;
        my $key = "idem-$$-$k-" . int(rand(1e9));
        my $before = $n->req(GET => $P)->{json};
        my $go = time + 0.5;
        my @out = parallel(20, sub {
            sleep_until($go);
            my $r = $n->req($method => $path, json => $body,
                            headers => { 'Idempotency-Key' => $key });
            return encode_json({ o => outcome($r), body => $r->{body},
                                 replayed => $r->{headers}{'idempotent-replayed'},
                                 show => InvTest::show($r) });
        });
        my ($res, $bad) = collect("(d) $label", @out);
        my @orig = grep { $_->{o} eq $want && !defined $_->{replayed} } @$res;
        my @rep = grep { $_->{o} eq $want && ($_->{replayed} // '') eq 'true' } @$res;
        my @busy = grep { $_->{o} eq '409 idempotency-key-in-flight' } @$res;
        $replayed += @rep;
        my $after = $n->req(GET => $P)->{json};
        diag "(d) $label: " . tally(map { $_->{o} . (defined $_->{replayed}
                                                     ? ' replayed' : '') } @$res);

        is(scalar(@orig), 1, "(d) $label: exactly one original $want")
            or diag join "\n", map { $_->{show} } @$res;
        is(@orig + @rep + @busy, 20, "(d) $label: the rest are replayed $want "
                                      . 'or 409 idempotency-key-in-flight')
            or diag join "\n", map { $_->{show} }
                grep { $_->{o} ne $want && $_->{o} ne '409 idempotency-key-in-flight' } @$res;
        ok(!@$bad, "(d) $label: no child failed") or diag join "\n", @$bad;
        ok(@orig && !grep({ $_->{body} ne $orig[0]{body} } @rep),
           "(d) $label: every replay has the original body");
        ok($check->($before, $after), "(d) $label: the state changed exactly once")
            or diag explain { before => $before, after => $after };

        # a later retry is replayed, a different request with the key is 422
        my $r = $n->req($method => $path, json => $body,
                        headers => { 'Idempotency-Key' => $key });
        ok($r->{status} == $want && ($r->{headers}{'idempotent-replayed'} // '') eq 'true'
           && @orig && $r->{body} eq $orig[0]{body},
           "(d) $label: a later retry is replayed") or diag InvTest::show($r);
        $replayed++ if ($r->{headers}{'idempotent-replayed'} // '') eq 'true';
        $r = $n->req($method => $path, json => { %$body, reason => 'other' },
                     headers => { 'Idempotency-Key' => $key })
            if $method eq 'POST' && exists $body->{delta};
        $r = $n->req($method => $path, json => { %$body, reference => 'other' },
                     headers => { 'Idempotency-Key' => $key })
            if exists $body->{quantity};
        is(outcome($r), '422 idempotency-key-reused',
           "(d) $label: another body with the key is 422")
            or diag InvTest::show($r);
        is_deeply($n->req(GET => $P)->{json}, $after,
                  "(d) $label: ... and nothing changed");
    }
    my $replays1 = metric_value($n, 'inventory_idempotent_replays_total') // 0;
    is($replays1 - $replays0, $replayed,
       "(d) inventory_idempotent_replays_total grew by the $replayed replays seen");

    # Once the whole answer has arrived the request is no longer in flight,
    # whatever the client does with its connection: here the client has
    # read the answer up to the server's FIN but not closed its end yet
    # (nginx then lingers on the connection before it frees the request).
    my $key = "idem-$$-open-" . int(rand(1e9));
    my $body = encode_json({ delta => 1 });
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $n->port, Proto => 'tcp',
                                  Timeout => 5)
        or die "connect: $!";
    syswrite $s, "POST $P/adjustments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 . "Connection: close\r\nContent-Type: application/json\r\n"
                 . "Idempotency-Key: $key\r\nContent-Length: "
                 . length($body) . "\r\n\r\n$body";
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + 10;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        sysread($s, $buf, 65536, length $buf) or last;
    }
    like($buf, qr{^HTTP/1\.1 200 .*"on_hand"}s,
         '(d) a keyed adjustment answered 200 in full');
    my $r = $n->req(POST => "$P/adjustments", json => { delta => 1 },
                    headers => { 'Idempotency-Key' => $key });
    ok($r->{status} == 200
       && ($r->{headers}{'idempotent-replayed'} // '') eq 'true',
       '(d) a retry after the whole answer arrived is replayed (the first '
       . 'client has not closed its connection yet)') or diag InvTest::show($r);
    close $s;
}

# --- (e) backorders: racing reservations take available down to
# -backorder_limit, never further ------------------------------------------
#
# Each client asks for 3 random quantities (1 to 4), then for 1 unit at a
# time until it is refused: a refused unit means available +
# backorder_limit was below 1 then, and reservations only grow here, so the
# total granted must be exactly available + backorder_limit at the start.

# change(\%item, $state, $delta): a quantity into or out of a state
sub change {
    my ($s, $state, $d) = @_;
    if ($state eq 'incoming') { $s->{incoming} += $d; return }
    $s->{$state} += $d if $state eq 'damaged' || $state eq 'quality_control';
    $s->{on_hand} += $d;
}

# replay_item(\@events): (\%item, \@problems): the item's log replayed from
# the empty item in version order; a problem for every event that breaks a
# rule of the model: a reservation beyond available + backorder_limit, a
# commit of more than on_hand - damaged - quality_control at that moment, an
# invariant broken after the event, LowStockDetected with another
# available.
sub replay_item {
    my ($ev) = @_;
    my %s = map { $_ => 0 } qw(on_hand reserved damaged quality_control
                               safety_stock incoming backorder_limit
                               min_level version);
    my @p;
    for my $e (@$ev) {
        my $d = ref $e->{data} eq 'HASH' ? $e->{data} : {};
        my $t = $e->{type} // '?';
        my $at = "seq " . ($e->{seq} // '?') . " $t";
        push @p, "$at: version $e->{version}, expected " . ($s{version} + 1)
            unless ($e->{version} // -1) == $s{version} + 1;
        $s{version}++;
        my $sell = $s{on_hand} - $s{damaged} - $s{quality_control};
        my $avail = $sell - $s{safety_stock} - $s{reserved};
        my $q = $d->{quantity} // 0;
        if ($t eq 'StockCounted') {
            $s{$_} = $d->{$_} // 0
                for qw(on_hand min_level safety_stock backorder_limit);
        } elsif ($t eq 'StockAdjusted') {
            change(\%s, $d->{state} // 'available', $d->{delta} // 0);
        } elsif ($t eq 'StockMoved') {
            change(\%s, $d->{from} // '?', -$q);
            change(\%s, $d->{to} // '?', $q);
        } elsif ($t eq 'StockReserved') {
            push @p, "$at: reserved $q with available $avail and "
                     . "backorder_limit $s{backorder_limit}"
                if $q > $avail + $s{backorder_limit};
            $s{reserved} += $q;
        } elsif ($t eq 'ReservationCommitted') {
            push @p, "$at: committed $q with only $sell on hand (on_hand "
                     . "- damaged - quality_control)" if $q > $sell;
            $s{on_hand} -= $q;
            $s{reserved} -= $q;
        } elsif ($t =~ /^Reservation(?:Released|Expired)\z/) {
            $s{reserved} -= $q;
        } elsif ($t eq 'LowStockDetected') {
            push @p, "$at: available " . ($d->{available} // 'none')
                     . ", the log gives $avail"
                unless defined $d->{available} && $d->{available} == $avail;
        } else {
            push @p, "$at: unexpected";
        }
        $sell = $s{on_hand} - $s{damaged} - $s{quality_control};
        push @p, "$at: leaves " . join(' ', map { "$_=$s{$_}" } sort keys %s)
            if $sell < 0 || $s{reserved} > $sell + $s{backorder_limit}
               || grep { $s{$_} < 0 } keys %s;
    }
    $s{available} = $s{on_hand} - $s{damaged} - $s{quality_control}
                    - $s{safety_stock} - $s{reserved};
    return (\%s, \@p);
}

# replayed_ok($sku, $label): the item's log replays without a problem into
# the item GET answers
sub replayed_ok {
    my ($sku, $label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($ev, $pp) = event_pages($n, $sku, 'hub', 1000);
    my ($s, $p) = replay_item($ev);
    push @$p, @$pp;
    my $g = $n->req(GET => "/v1/inventory/$sku/hub")->{json} // {};
    for my $k (sort keys %$s) {
        next if $k eq 'min_level' && !exists $g->{$k};
        push @$p, "GET says $k " . ($g->{$k} // 'none') . ", the log $s->{$k}"
            unless defined $g->{$k} && $g->{$k} == $s->{$k};
    }
    ok(!@$p, "$label: the log replays by the rules (no reservation beyond "
       . 'available + backorder_limit, no commit beyond what is on hand, '
       . 'every invariant after every event) into the item GET answers')
        or diag join "\n", @$p[0 .. ($#$p > 15 ? 15 : $#$p)];
    return $ev;
}

my $bo_seed = $ENV{SEED} // int(rand(1e9));
diag "(e) seed $bo_seed";
my %HOLDS;    # BO-1's granted reservations: id => quantity, for (f)
for my $case (
    # sku, clients, setup writes, the item they leave
    [ 'BO-1', 40, [
          [ PUT => '', { on_hand => 40, safety_stock => 5,
                         backorder_limit => 25 } ],
          [ POST => '/adjustments', { delta => 3, state => 'damaged' } ],
          [ POST => '/adjustments', { delta => 2,
                                      state => 'quality_control' } ],
          [ POST => '/adjustments', { delta => 30, state => 'incoming' } ] ],
      { on_hand => 45, damaged => 3, quality_control => 2,
        safety_stock => 5, incoming => 30, backorder_limit => 25,
        reserved => 0, available => 35 } ],
    # safety stock above what is sellable: available starts below zero
    [ 'BO-2', 20, [
          [ PUT => '', { on_hand => 5, safety_stock => 8,
                         backorder_limit => 10 } ] ],
      { on_hand => 5, safety_stock => 8, backorder_limit => 10,
        reserved => 0, available => -3 } ],
) {
    my ($sku, $clients, $setup, $want) = @$case;
    my $P = "/v1/inventory/$sku/hub";
    my @failed;
    for my $w (@$setup) {
        my $r = $n->req($w->[0] => "$P$w->[1]", json => $w->[2]);
        push @failed, InvTest::show($r) unless $r->{status} =~ /^20[01]\z/;
    }
    ok(!@failed, "(e) $sku setup writes") or diag join "\n", @failed;
    my $r = $n->req(GET => $P);
    item_ok($r, 200, $want, "(e) $sku setup: available $want->{available}, "
            . "backorder_limit $want->{backorder_limit}") or next;
    my $v0 = $r->{json}{version};
    my $B = $want->{backorder_limit};
    my $cap = $want->{available} + $B;

    my $go = time + 0.6;
    my $t = time;
    my ($res, $bad) = collect("(e) $sku", parallel($clients, sub {
        my ($i) = @_;
        srand($bo_seed + 104729 * ($i + 1) + ($sku eq 'BO-1' ? 0 : 7));
        my (@won, @st, @bad);
        sleep_until($go);
        for my $k (1 .. 100) {
            my $q = $k <= 3 ? 1 + int rand 4 : 1;
            my $ref = "bo:$sku:$i:$k";
            my $r = $n->req(POST => "$P/reservations",
                            json => { quantity => $q, ttl_seconds => 3600,
                                      reference => $ref });
            my $o = outcome($r);
            push @st, $o;
            my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
            if ($o eq '201') {
                my $l = ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [];
                push @bad, 'bad 201: ' . InvTest::show($r)
                    unless defined $j->{id} && ($j->{state} // '') eq 'active'
                           && ($j->{reference} // '') eq $ref
                           && @$l == 1 && ($l->[0]{quantity} // 0) == $q
                           && ($l->[0]{sku} // '') eq $sku;
                push @won, { id => $j->{id}, q => $q, ref => $ref };
            } elsif ($o eq '409 insufficient-stock') {
                my $a = $j->{available};
                push @bad, "409 for $q with available " . ($a // 'none')
                           . " and backorder_limit $B: " . InvTest::show($r)
                    unless defined $a && $a =~ /\A-?\d+\z/ && $a >= -$B
                           && $a + $B < $q;
                last if $k > 3;
            } else {
                push @bad, InvTest::show($r);
                last;
            }
        }
        return encode_json({ won => \@won, st => \@st, bad => \@bad });
    }));
    my @st = map { @{ $_->{st} } } @$res;
    my @won = map { @{ $_->{won} } } @$res;
    push @$bad, map { @{ $_->{bad} } } @$res;
    my $sum = 0;
    $sum += $_->{q} for @won;
    diag sprintf "(e) %s %.2f s: %s; %d units granted in %d reservations",
        $sku, time - $t, tally(@st), $sum, scalar @won;

    ok(!grep({ !/^(?:201|409 insufficient-stock)\z/ } @st),
       "(e) $sku: every answer is 201 or 409 insufficient-stock (no 5xx)");
    ok(!@$bad, "(e) $sku: every 201 well-formed with its reference; every "
       . 'refusal reports an available with available + backorder_limit '
       . 'below the quantity asked, never below -backorder_limit')
        or diag join "\n", @$bad[0 .. ($#$bad > 10 ? 10 : $#$bad)];
    is(scalar(grep { ($_->{st}[-1] // '') eq '409 insufficient-stock' }
              @$res), $clients, "(e) $sku: each client was refused at last "
       . '(demand beyond the limit)');
    is($sum, $cap, "(e) $sku: exactly available + backorder_limit = $cap "
       . 'units granted');
    my %u = map { $_->{id} => 1 } @won;
    is(scalar(keys %u), scalar(@won), "(e) $sku: reservation ids are unique");
    item_ok($n->req(GET => $P), 200,
            { %$want, reserved => $sum, available => $want->{available} - $sum },
            "(e) $sku: reserved is the sum of the granted reservations, "
            . "available -$B");

    my $ev = replayed_ok($sku, "(e) $sku");
    my @resv = grep { $_->{type} eq 'StockReserved' } @$ev;
    my @got = sort map { "$_->{data}{reservation_id}=$_->{data}{quantity}="
                         . ($_->{data}{reference} // '') } @resv;
    my @exp = sort map { "$_->{id}=$_->{q}=$_->{ref}" } @won;
    my @other = grep { $_->{version} > $v0 && $_->{type} ne 'StockReserved'
                       && $_->{type} ne 'LowStockDetected' } @$ev;
    ok("@got" eq "@exp" && !@other,
       "(e) $sku: the log holds exactly the granted reservations, with "
       . 'their references, and nothing else but LowStockDetected')
        or diag explain { got => scalar(@got), granted => scalar(@exp),
                          other => \@other };
    %HOLDS = map { ($_->{id} => $_->{q}) } @won if $sku eq 'BO-1';
}

# --- (f) racing commits of backordered holds while receipts arrive -----------
#
# BO-1 holds 60 units, 40 of them on hand (45 on hand, 3 damaged, 2 in
# quality control).  8 clients commit the holds (each its own share, again
# and again while refused), 4 others move stock: 15 received from incoming
# into available, 3 into damaged, 2 into quality control, 2 damaged and 2
# quality-control units passed back to available.  At most 59 units can
# ever be sellable, so some holds stay backordered.  No commit may take
# more than on_hand - damaged - quality_control at its moment (the log
# replayed), every acknowledged write is in the log once and the final
# state is what the acknowledged writes make of the start.
if (%HOLDS) {
    my $P = '/v1/inventory/BO-1/hub';
    my $start = $n->req(GET => $P)->{json} // {};
    my @ids = sort keys %HOLDS;
    my $NC = 8;
    my @movers = (
        (map { [ map { [ 'incoming', 'available' ] } 1 .. 5 ] } 1 .. 3),
        [ (map { [ 'incoming', 'damaged' ] } 1 .. 3),
          (map { [ 'incoming', 'quality_control' ] } 1 .. 2),
          (map { [ 'damaged', 'available' ] } 1 .. 2),
          (map { [ 'quality_control', 'available' ] } 1 .. 2) ],
    );
    my $go = time + 0.6;
    my $stop_at = $go + 1.0;
    my $t = time;
    my ($res, $bad) = collect('(f)', parallel($NC + @movers, sub {
        my ($i) = @_;
        my (@bad, @st, @done, @moved);
        if ($i >= $NC) {
            my $plan = $movers[$i - $NC];
            sleep_until($go);
            my $k = 0;
            for my $m (@$plan) {
                my $ref = "po:$i-" . ++$k;
                my $r = $n->req(POST => "$P/moves", json => {
                    from => $m->[0], to => $m->[1], quantity => 1,
                    reason => 'receipt', reference => $ref });
                my $o = outcome($r);
                push @st, "move $o";
                if ($o eq '200') {
                    push @moved, "$m->[0]>$m->[1]=1=$ref";
                } else {
                    push @bad, "move $m->[0] -> $m->[1]: " . InvTest::show($r);
                }
                sleep 0.02 + rand 0.05;
            }
            return encode_json({ st => \@st, bad => \@bad, moved => \@moved,
                                 done => [] });
        }
        my @mine = grep { $_ % $NC == $i } 0 .. $#ids;
        my @pending = @ids[@mine];
        sleep_until($go);
        while (@pending && time < $stop_at) {
            my @left;
            for my $id (@pending) {
                my $r = $n->req(POST => "/v1/reservations/$id/commit",
                                json => { reason => 'ship' });
                my $o = outcome($r);
                push @st, "commit $o";
                my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
                if ($o eq '200') {
                    push @bad, 'bad 200: ' . InvTest::show($r)
                        unless ($j->{id} // '') eq $id
                               && ($j->{state} // '') eq 'committed';
                    push @done, $id;
                } elsif ($o eq '409 insufficient-stock') {
                    my $l = ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [];
                    push @bad, 'a refused commit does not name its line: '
                               . InvTest::show($r)
                        unless @$l == 1 && ($l->[0]{sku} // '') eq 'BO-1'
                               && ($l->[0]{location} // '') eq 'hub'
                               && ($l->[0]{quantity} // 0) == $HOLDS{$id};
                    push @left, $id;
                } else {
                    push @bad, InvTest::show($r);
                }
            }
            @pending = @left;
            sleep 0.08;
        }
        return encode_json({ st => \@st, bad => \@bad, done => \@done,
                             moved => [] });
    }));
    my @st = map { @{ $_->{st} } } @$res;
    my @done = map { @{ $_->{done} } } @$res;
    my @moved = map { @{ $_->{moved} } } @$res;
    push @$bad, map { @{ $_->{bad} } } @$res;
    diag sprintf "(f) %.2f s: %s", time - $t, tally(@st);

    ok(!@$bad, '(f) every move 200; every commit 200 committed or 409 '
       . 'insufficient-stock naming its line (no 5xx, no other answer)')
        or diag join "\n", @$bad[0 .. ($#$bad > 10 ? 10 : $#$bad)];
    is(scalar(@moved), 24, '(f) the 24 moves were acknowledged');
    ok(scalar(grep { $_ eq 'commit 409 insufficient-stock' } @st) > 0,
       '(f) some commits were refused: held beyond what was on hand');

    # the rest, one at a time: a hold ships iff it is on hand now
    my %acked = map { $_ => 1 } @done;
    my @late;
    for my $id (sort { $HOLDS{$a} <=> $HOLDS{$b} || $a cmp $b }
                grep { !$acked{$_} } @ids) {
        my $g = $n->req(GET => $P)->{json} // {};
        my $sell = ($g->{on_hand} // 0) - ($g->{damaged} // 0)
                   - ($g->{quality_control} // 0);
        my $r = $n->req(POST => "/v1/reservations/$id/commit");
        my $o = outcome($r);
        if ($o eq '200') { $acked{$id} = 1; push @done, $id }
        push @late, "$id: $HOLDS{$id} with $sell on hand: $o"
            unless $o eq ($HOLDS{$id} <= $sell ? '200'
                                               : '409 insufficient-stock');
    }
    ok(!@late, '(f) afterwards, each hold still active commits one at a '
       . 'time iff its quantity is on hand') or diag join "\n", @late;

    # every acknowledged write against the final state and the log
    my ($sum, %to, %from) = (0);
    $sum += $HOLDS{$_} for @done;
    for (@moved) {
        my ($f, $tt) = /^(\w+)>(\w+)=/;
        $from{$f}++;
        $to{$tt}++;
    }
    my $in = $from{incoming} // 0;
    my %want = (
        on_hand => $start->{on_hand} + $in - $sum,
        damaged => $start->{damaged} + ($to{damaged} // 0)
                   - ($from{damaged} // 0),
        quality_control => $start->{quality_control}
                           + ($to{quality_control} // 0)
                           - ($from{quality_control} // 0),
        incoming => $start->{incoming} - $in,
        reserved => $start->{reserved} - $sum,
        safety_stock => $start->{safety_stock},
        backorder_limit => $start->{backorder_limit},
    );
    $want{available} = $want{on_hand} - $want{damaged}
                       - $want{quality_control} - $want{safety_stock}
                       - $want{reserved};
    diag "(f) committed $sum of $start->{reserved} units in "
         . scalar(@done) . ' of ' . scalar(@ids) . ' holds';
    item_ok($n->req(GET => $P), 200, \%want, '(f) final: the start plus the '
            . 'acknowledged moves, less the acknowledged commits');
    ok($sum <= $start->{on_hand} - $start->{damaged}
               - $start->{quality_control} + ($to{available} // 0),
       "(f) committed $sum: never more than was ever sellable");

    my $ev = replayed_ok('BO-1', '(f) BO-1');
    my @c = sort map { $_->{data}{reservation_id} }
            grep { $_->{type} eq 'ReservationCommitted' } @$ev;
    my @m = sort map { "$_->{data}{from}>$_->{data}{to}=$_->{data}{quantity}="
                       . ($_->{data}{reference} // '') }
            grep { $_->{type} eq 'StockMoved' } @$ev;
    my @other = grep { $_->{type} !~ /^(?:StockCounted|StockAdjusted|
                       StockReserved|ReservationCommitted|StockMoved|
                       LowStockDetected)\z/x } @$ev;
    ok("@c" eq join(' ', sort @done) && "@m" eq join(' ', sort @moved)
       && !@other,
       '(f) the log holds each acknowledged commit and move exactly once, '
       . 'and nothing else') or diag explain { commits => \@c, acked => \@done,
                                               moves => \@m, acked_moves => \@moved,
                                               other => \@other };
    my @state;
    for my $id (@ids) {
        my $s = $n->req(GET => "/v1/reservations/$id")->{json}{state} // '?';
        push @state, "$id is $s"
            if $s ne ($acked{$id} ? 'committed' : 'active');
    }
    ok(!@state, '(f) each hold is committed iff a commit of it was '
       . 'acknowledged, else still active') or diag join "\n", @state;
}

diag sprintf "total %.1f s", time - $T0;
$n->stop;
done_testing;
