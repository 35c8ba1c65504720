# Randomized property test: ~10 s of a random mix of every write (counts,
# adjustments, reservations and carts with short TTLs, commits, releases,
# transfers, If-Match, Idempotency-Key retries) from 10 concurrent clients
# over 8 items, then, once every reservation has expired, every invariant of
# the contract is checked against the items, their event logs (replayed from
# the empty state), the reservations and what the clients were told.
#
# SEED=n reproduces a run's choices (the interleaving is up to the machine).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use InvTest qw(parallel encode_json decode_json event_pages metric_value
               sleep_until ts_ms replay_events);

my $SEED = $ENV{SEED} // (time * 1000 % 1e9) ^ $$;
$SEED = int $SEED;
diag "SEED=$SEED";
srand($SEED);

my $CHILDREN = $ENV{PROP_CHILDREN} // 10;
my $SECONDS = $ENV{PROP_SECONDS} // 10;

my $n = InvTest->start(workers => 4);
my $T0 = time;

my @SKUS = map { "P-$_" } 1 .. 4;
my @LOCS = qw(L-a L-b);
my @ITEMS = map { my $s = $_; map { [$s, $_] } @LOCS } @SKUS;
my $ABSENT = 'P-4/L-b';       # created only by adjustments or transfers

# --- setup ---------------------------------------------------------------------
my %setup_counts;             # StockCounted events appended by the setup
for my $it (@ITEMS) {
    my ($s, $l) = @$it;
    next if "$s/$l" eq $ABSENT;
    my $r = $n->req(PUT => "/v1/inventory/$s/$l",
                    json => { on_hand => 5 + int rand 26,
                              min_level => int rand 9 });
    is($r->{status}, 201, "setup: $s/$l") or diag InvTest::show($r);
    $setup_counts{"$s/$l"}++;
}

# --- the random clients -----------------------------------------------------------
my %OK = (
    get      => { 200 => 1, 404 => 'not-found' },
    put      => { 200 => 1, 201 => 1, 409 => 'insufficient-stock',
                  412 => 'version-mismatch' },
    adjust   => { 200 => 1, 201 => 1, 404 => 'not-found',
                  409 => 'insufficient-stock', 412 => 'version-mismatch' },
    reserve  => { 201 => 1, 404 => 'not-found', 409 => 'insufficient-stock',
                  412 => 'version-mismatch' },
    cart     => { 201 => 1, 404 => 'not-found', 409 => 'insufficient-stock' },
    commit   => { 200 => 1, 409 => 'reservation-not-active' },
    release  => { 200 => 1, 409 => 'reservation-not-active' },
    transfer => { 200 => 1, 404 => 'not-found', 409 => 'insufficient-stock' },
    getres   => { 200 => 1 },
);

my $t_end = time + $SECONDS;
my @out = parallel($CHILDREN, sub {
    my ($ci) = @_;
    srand($SEED + 7919 * ($ci + 1));
    my (%st, @bad, @late, %seen, %maxver, @mine, %n_ok, @ended, $keyn);
    my $last_exp = 0;

    my $item_check = sub {
        my ($j, $what) = @_;
        my @p = InvTest::item_problems($j);
        push @bad, "$what: item problems: @p: " . encode_json($j) if @p;
        return if @p;
        my $k = "$j->{sku}/$j->{location}";
        # one client's requests are sequential: versions never go back
        push @bad, "$what: $k version $j->{version} after $maxver{$k}"
            if defined $maxver{$k} && $j->{version} < $maxver{$k};
        $maxver{$k} = $j->{version}
            if !defined $maxver{$k} || $j->{version} > $maxver{$k};
    };

    # one request: status and problem code allowed for the kind; returns
    # the response (replays with an Idempotency-Key are checked here)
    my $send = sub {
        my ($kind, $method, $path, %o) = @_;
        my $idem = $method ne 'GET' && rand() < 0.1;
        $o{headers}{'Idempotency-Key'} = "p$SEED-$ci-" . ++$keyn if $idem;
        my $r = $n->req($method, $path, %o);
        my $ok = $OK{$kind}{ $r->{status} };
        $st{"$kind $r->{status}"}++;
        if (!$ok) {
            push @bad, "$kind unexpected: " . InvTest::show($r);
        } elsif ($ok ne '1') {
            push @bad, "$kind $r->{status} not a $ok problem: " . InvTest::show($r)
                unless $r->{content_type} =~ m{^application/problem\+json}
                       && ref $r->{json} eq 'HASH'
                       && ($r->{json}{code} // '') eq $ok
                       && ($r->{json}{status} // 0) == $r->{status};
        } else {
            push @bad, "$kind $r->{status} not JSON: " . InvTest::show($r)
                unless ref $r->{json} eq 'HASH';
        }
        push @bad, "$kind answered Idempotent-Replayed without a key"
            if !$idem && exists $r->{headers}{'idempotent-replayed'};
        if ($idem) {
            my $again = $n->req($method, $path, %o);
            $st{"$kind replay"}++;
            # the first answer is in: the key is no longer in flight
            if ($again->{status} == 409
                && ($again->{json}{code} // '') eq 'idempotency-key-in-flight')
            {
                $st{"$kind replay: 409 in flight"}++;
                push @late, "$kind: " . InvTest::show($again);
                return $r;
            }
            push @bad, "$kind retry with the key not replayed: "
                       . InvTest::show($r) . "\n--- retry: " . InvTest::show($again)
                unless $again->{status} == $r->{status}
                       && $again->{body} eq $r->{body}
                       && ($again->{headers}{'idempotent-replayed'} // '') eq 'true';
        }
        return $r;
    };

    my $item = sub { my $it = $ITEMS[rand @ITEMS]; ($it->[0], $it->[1]) };
    my $if_match = sub {
        my ($k) = @_;
        my $x = rand;
        return () if $x < 0.7;
        return ('If-Match' => '*') if $x < 0.78;
        my $v = $maxver{$k} // 1;
        $v += int(rand 3) - 1 if rand() < 0.2;     # sometimes stale
        $v = 1 if $v < 1;
        return ('If-Match' => qq{"$v"});
    };
    # a 2xx under If-Match "V" is the write right after V (+ LowStockDetected)
    my $match_check = sub {
        my ($kind, $h, $r, $j) = @_;
        my $im = $h->{'If-Match'} // return;
        return unless $im =~ /^"(\d+)"\z/;
        my $v = $1;
        if ($r->{status} == 412) {
            push @bad, "$kind 412 for If-Match $im with current_version $v"
                if ($r->{json}{current_version} // -1) == $v;
        } elsif ($r->{status} < 300 && ref $j eq 'HASH' && defined $j->{version}) {
            push @bad, "$kind If-Match $im answered version $j->{version}"
                unless $j->{version} == $v + 1 || $j->{version} == $v + 2;
        }
    };
    my $ttl = sub { 1 + int rand 3 };
    my $note_res = sub {
        my ($r) = @_;
        my $j = $r->{json};
        return unless $r->{status} == 201 && ref $j eq 'HASH' && defined $j->{id};
        return if ($r->{headers}{'idempotent-replayed'} // '') eq 'true';
        unless (($j->{state} // '') eq 'active' && ref $j->{lines} eq 'ARRAY') {
            push @bad, 'reservation 201 malformed: ' . $r->{body};
            return;
        }
        push @mine, $j->{id};
        $seen{ $j->{id} } = 1;
        my $e = (ts_ms($j->{expires_at}) // 0) / 1000;
        $last_exp = $e if $e > $last_exp;
    };

    my @ops = (
        [ 8, sub {                                        # GET an item
            my ($s, $l) = $item->();
            my $r = $send->('get', GET => "/v1/inventory/$s/$l");
            $item_check->($r->{json}, 'get') if $r->{status} == 200;
        } ],
        [ 7, sub {                                        # PUT a count
            my ($s, $l) = $item->();
            my %h = $if_match->("$s/$l");
            my %b = (on_hand => int rand 31);
            $b{min_level} = int rand 9 if rand() < 0.5;
            $b{reason} = 'count' if rand() < 0.2;
            my $r = $send->('put', PUT => "/v1/inventory/$s/$l", json => \%b,
                            headers => \%h);
            $match_check->('put', \%h, $r, $r->{json});
            if ($r->{status} =~ /^20[01]\z/) {
                $item_check->($r->{json}, 'put');
                $n_ok{put}++ unless $r->{headers}{'idempotent-replayed'};
                push @bad, 'put 201 on an item that existed before'
                    if $r->{status} == 201 && "$s/$l" ne $ABSENT;
            }
        } ],
        [ 14, sub {                                       # adjustment
            my ($s, $l) = $item->();
            my %h = $if_match->("$s/$l");
            my $d = 0;
            $d = int(rand 13) - 6 while !$d;
            my $r = $send->('adjust', POST => "/v1/inventory/$s/$l/adjustments",
                            json => { delta => $d }, headers => \%h);
            $match_check->('adjust', \%h, $r, $r->{json});
            if ($r->{status} =~ /^20[01]\z/) {
                $item_check->($r->{json}, 'adjust');
                $n_ok{adjust}++ unless $r->{headers}{'idempotent-replayed'};
                push @bad, 'adjustment 201 on an item that existed before'
                    if $r->{status} == 201 && "$s/$l" ne $ABSENT;
            }
        } ],
        [ 18, sub {                                       # item reservation
            my ($s, $l) = $item->();
            my %h = $if_match->("$s/$l");
            my %b = (quantity => 1 + int rand 4, ttl_seconds => $ttl->());
            $b{reference} = "ref-$ci" if rand() < 0.3;
            my $r = $send->('reserve', POST => "/v1/inventory/$s/$l/reservations",
                            json => \%b, headers => \%h);
            $match_check->('reserve', \%h, $r, undef);
            $note_res->($r);
        } ],
        [ 12, sub {                                       # cart
            my @lines = map { my ($s, $l) = $item->();
                              { sku => $s, location => $l,
                                quantity => 1 + int rand 3 } } 1 .. 1 + int rand 3;
            # sometimes name one item twice
            if (@lines > 1 && rand() < 0.25) {
                $lines[-1]{sku} = $lines[0]{sku};
                $lines[-1]{location} = $lines[0]{location};
            }
            my $r = $send->('cart', POST => '/v1/reservations',
                            json => { lines => \@lines, ttl_seconds => $ttl->() });
            $note_res->($r);
        } ],
        [ 10, sub {                                       # commit
            return unless @mine;
            my $id = $mine[rand @mine];
            my $r = $send->('commit', POST => "/v1/reservations/$id/commit");
            if ($r->{status} == 200 && !$r->{headers}{'idempotent-replayed'}) {
                push @ended, [$id, 'committed'];
            }
        } ],
        [ 10, sub {                                       # release
            return unless @mine;
            my $id = $mine[rand @mine];
            my $r = $send->('release', POST => "/v1/reservations/$id/release",
                            (rand() < 0.5 ? (json => {}) : ()));
            if ($r->{status} == 200 && !$r->{headers}{'idempotent-replayed'}) {
                push @ended, [$id, 'released'];
            }
        } ],
        [ 10, sub {                                       # transfer
            my $s = $SKUS[rand @SKUS];
            my ($from, $to) = rand() < 0.5 ? @LOCS : reverse @LOCS;
            my $r = $send->('transfer', POST => '/v1/transfers',
                            json => { sku => $s, from => $from, to => $to,
                                      quantity => 1 + int rand 4 });
            if ($r->{status} == 200) {
                if (ref $r->{json}{from} eq 'HASH' && ref $r->{json}{to} eq 'HASH') {
                    $item_check->($r->{json}{from}, 'transfer from');
                    $item_check->($r->{json}{to}, 'transfer to');
                } else {
                    push @bad, 'transfer 200 malformed: ' . $r->{body};
                }
                $n_ok{transfer}++ unless $r->{headers}{'idempotent-replayed'};
            }
        } ],
        [ 3, sub {                                        # GET a reservation
            return unless @mine;
            my $r = $send->('getres', GET => "/v1/reservations/$mine[rand @mine]");
        } ],
    );
    my $total_w = 0;
    $total_w += $_->[0] for @ops;

    while (time < $t_end) {
        my $x = rand $total_w;
        for my $op (@ops) {
            if (($x -= $op->[0]) < 0) { $op->[1]->(); last }
        }
        last if @bad > 30;
    }
    return encode_json({ st => \%st, bad => \@bad, late => \@late,
                         mine => \@mine,
                         ended => \@ended, n_ok => \%n_ok,
                         last_exp => $last_exp });
});
my $ops_time = time - $T0;

my (%st, @bad, @late, %client_res, %client_end, %n_ok);
my $last_exp = 0;
for my $s (@out) {
    my $j = eval { decode_json($s) };
    if (ref $j ne 'HASH') { push @bad, "child: $s"; next }
    $st{$_} += $j->{st}{$_} for keys %{ $j->{st} };
    push @bad, @{ $j->{bad} };
    push @late, @{ $j->{late} };
    $client_res{$_} = 1 for @{ $j->{mine} };
    for my $e (@{ $j->{ended} }) {
        push @bad, "client: $e->[0] ended twice ($client_end{$e->[0]}, $e->[1])"
            if $client_end{ $e->[0] };
        $client_end{ $e->[0] } = $e->[1];
    }
    $n_ok{$_} += $j->{n_ok}{$_} for keys %{ $j->{n_ok} };
    $last_exp = $j->{last_exp} if $j->{last_exp} > $last_exp;
}
my $nreq = 0;
$nreq += $st{$_} for keys %st;
diag sprintf "%.1f s of traffic, %d requests:\n%s", $ops_time, $nreq,
    join "\n", map { "  $_ x$st{$_}" } sort keys %st;
ok(!@bad, 'every answer during the run was allowed, well-formed, consistent')
    or diag join "\n", @bad[0 .. ($#bad > 25 ? 25 : $#bad)];
ok(!grep({ /\s5\d\d\z/ } keys %st), 'no 5xx');
{
    my $retries = 0;
    $retries += $st{$_} for grep { /\ replay\z/ } keys %st;
    ok(!@late, 'a retry sent after the first answer arrived is replayed, '
               . 'never 409 idempotency-key-in-flight (' . scalar(@late)
               . " of $retries were)")
        or diag join "\n", @late[0 .. ($#late > 2 ? 2 : $#late)];
}
ok(scalar(keys %client_res) > 20, 'the run created reservations ('
   . scalar(keys %client_res) . ')');

# --- let every reservation expire (no traffic) ---------------------------------
my $t = time;
sleep_until($last_exp + 2.5);
diag sprintf 'waited %.1f s for the last expiry', time - $t;

# --- per item: projection, log, replay --------------------------------------------
my (%res, @seqs, %types, %xfer, @fail);
my $low_checked = 0;
for my $it (@ITEMS) {
    my ($s, $l) = @$it;
    my $k = "$s/$l";
    my $r = $n->req(GET => "/v1/inventory/$k");
    my ($ev, $pp) = event_pages($n, $s, $l, 97, missing_ok => $k eq $ABSENT);
    if ($r->{status} == 404 && $k eq $ABSENT && !@$ev) {
        pass("$k never created");
        next;
    }
    my @p = @$pp;
    push @p, 'GET: ' . InvTest::show($r) unless $r->{status} == 200;
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    push @p, map { "item: $_" } InvTest::item_problems($j);
    my ($rep, $rp) = replay_events($ev, $s, $l);
    push @p, @$rp;
    push @p, 'version ' . ($j->{version} // 'null') . ' != ' . scalar(@$ev)
             . ' events' unless ($j->{version} // -1) == @$ev;
    for my $f (qw(on_hand reserved min_level available version)) {
        push @p, "replay $f $rep->{$f} != item " . ($j->{$f} // 'null')
            unless ($j->{$f} // -1) == $rep->{$f};
    }
    push @p, "replay low_stock $rep->{low_stock} != item"
        unless (!!$j->{low_stock}) == (!!$rep->{low_stock});
    push @p, 'updated_at ' . ($j->{updated_at} // 'null') . ' != at of the last '
             . 'event ' . ($rep->{updated_at} // 'null')
        unless ($j->{updated_at} // '') eq ($rep->{updated_at} // '');
    ok(!@p, "$k: $rep->{version} events replay to the projection (on_hand "
            . "$rep->{on_hand}, reserved $rep->{reserved}, min_level "
            . "$rep->{min_level}); versions gap-free, seq increasing, "
            . "LowStockDetected exactly after each false->true")
        or diag join "\n", @p[0 .. ($#p > 20 ? 20 : $#p)];
    $low_checked += grep { $_->{type} eq 'LowStockDetected' } @$ev;

    for my $e (@$ev) {
        push @seqs, [ $e->{seq}, ts_ms($e->{at}) // 0 ];
        $types{ $e->{type} }++;
        my $d = $e->{data};
        if (defined $d->{reservation_id}) {
            my $x = $res{ $d->{reservation_id} } //= { reserved => {}, ends => [] };
            if ($e->{type} eq 'StockReserved') {
                push @fail, "$d->{reservation_id}: StockReserved on $k after its end"
                    if grep { $_->[1] eq $k } @{ $x->{ends} };
                $x->{reserved}{$k} += $d->{quantity};
                $x->{nres}++;
            } else {
                push @fail, "$d->{reservation_id}: $e->{type} on $k before "
                            . 'any StockReserved there'
                    unless $x->{reserved}{$k};
                push @{ $x->{ends} }, [ $e->{type}, $k, $d->{quantity}, $e->{at} ];
            }
        }
        if ($e->{type} eq 'StockTransferredOut') {
            push @{ $xfer{"$s $l>" . ($d->{to} // '?') . " $d->{quantity}"} },
                [ 'out', $e->{at} ];
        } elsif ($e->{type} eq 'StockTransferredIn') {
            push @{ $xfer{"$s " . ($d->{from} // '?') . ">$l $d->{quantity}"} },
                [ 'in', $e->{at} ];
        }
    }
}
diag "events by type: " . join ', ', map { "$_ x$types{$_}" } sort keys %types;

# the log is global: these items are all there is, so seq is exactly 1..N
{
    my @sorted = sort { $a->[0] <=> $b->[0] } @seqs;
    my $gap = grep { $sorted[$_][0] != $_ + 1 } 0 .. $#sorted;
    my $last = metric_value($n, 'inventory_last_seq') // -1;
    ok(!$gap && $last == @sorted,
       'seq over all items is exactly 1..' . scalar(@sorted)
       . " (inventory_last_seq $last)");
    my $back = grep { $sorted[$_][1] < $sorted[$_ - 1][1] } 1 .. $#sorted;
    is($back, 0, 'event times never go back in seq order');
}

# every transfer is one Out and one In, in one transaction
{
    my @p;
    for my $k (sort keys %xfer) {
        my @o = sort map { $_->[1] } grep { $_->[0] eq 'out' } @{ $xfer{$k} };
        my @i = sort map { $_->[1] } grep { $_->[0] eq 'in' } @{ $xfer{$k} };
        push @p, "$k: out at (@o), in at (@i)" if "@o" ne "@i";
    }
    ok(!@p, 'each StockTransferredOut has its StockTransferredIn (same '
            . 'quantity, same time)') or diag join "\n", @p;
}

# --- reservations: each ends at most once, reserved = active ones -----------------
{
    my %endtype = (ReservationCommitted => 'committed',
                   ReservationReleased => 'released',
                   ReservationExpired => 'expired');
    my %active_sum;
    my %ids = (%client_res, map { $_ => 1 } keys %res);
    my $nstate = { map { $_ => 0 } qw(active committed released expired) };
    my $late_ms = 0;
    for my $id (sort keys %ids) {
        my $x = $res{$id};
        my $r = $n->req(GET => "/v1/reservations/$id");
        my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
        if ($r->{status} != 200) {
            push @fail, "$id: " . InvTest::show($r);
            next;
        }
        my $state = $j->{state} // '?';
        $nstate->{$state}++;
        if (!$x) {
            push @fail, "$id: acknowledged with 201 but not in any item's log";
            next;
        }
        push @fail, "$id: acknowledged by no client" unless $client_res{$id};
        my %lines;
        $lines{"$_->{sku}/$_->{location}"} += $_->{quantity}
            for @{ ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [] };
        my $lw = join ' ', map { "$_=$lines{$_}" } sort keys %lines;
        my $lg = join ' ', map { "$_=$x->{reserved}{$_}" } sort keys %{ $x->{reserved} };
        push @fail, "$id: lines ($lw) but StockReserved ($lg)" if $lw ne $lg;
        push @fail, "$id: " . scalar(@{ $j->{lines} // [] }) . " lines but "
                    . "$x->{nres} StockReserved events"
            if ref $j->{lines} eq 'ARRAY' && @{ $j->{lines} } != $x->{nres};

        my @ends = @{ $x->{ends} };
        if ($state eq 'active') {
            push @fail, "$id: active but has end events" if @ends;
            $active_sum{$_} += $lines{$_} for keys %lines;
            next;
        }
        my %et = map { $_->[0] => 1 } @ends;
        my %ended;
        $ended{ $_->[1] } += $_->[2] for @ends;
        my $eg = join ' ', map { "$_=$ended{$_}" } sort keys %ended;
        push @fail, "$id: state $state, end events "
                    . join(',', map { "$_->[0] $_->[1] $_->[2]" } @ends)
            unless keys(%et) == 1 && $endtype{ (keys %et)[0] }
                   && $endtype{ (keys %et)[0] } eq $state
                   && @ends == $x->{nres} && $eg eq $lg;
        push @fail, "$id: a client was told $client_end{$id}, state is $state"
            if $client_end{$id} && $client_end{$id} ne $state;
        push @fail, "$id: $state, but no client was told so"
            if ($state eq 'committed' || $state eq 'released')
               && !$client_end{$id};
        if ($state eq 'expired') {
            my $exp = ts_ms($j->{expires_at}) // 0;
            for my $e (@ends) {
                my $late = ts_ms($e->[3]) - $exp;
                push @fail, "$id: expired on $e->[1] $late ms after expires_at"
                    if $late < 0 || $late > 2000;
                $late_ms = $late if $late > $late_ms;
            }
        }
    }
    diag 'reservations: ' . join ', ', map { "$_ x$nstate->{$_}" } sort keys %$nstate;
    diag "latest expiry: $late_ms ms after expires_at";
    ok(!@fail, 'every reservation: lines = its StockReserved events; ended at '
               . 'most once, by one kind of end per line, matching its state '
               . 'and what clients were told; expired within 2 s, never early')
        or diag join "\n", @fail[0 .. ($#fail > 25 ? 25 : $#fail)];
    is($nstate->{active}, 0, 'no reservation is still active (all TTLs were 1-3 s)');

    my @p;
    for my $it (@ITEMS) {
        my $k = "$it->[0]/$it->[1]";
        my $r = $n->req(GET => "/v1/inventory/$k");
        next if $r->{status} == 404 && $k eq $ABSENT;
        push @p, "$k reserved " . ($r->{json}{reserved} // 'null')
                 . ", active reservations hold " . ($active_sum{$k} // 0)
            unless ($r->{json}{reserved} // -1) == ($active_sum{$k} // 0);
    }
    ok(!@p, 'every item: reserved = sum of its active reservations')
        or diag join "\n", @p;

    # what the clients were acknowledged is exactly what the log holds
    my %committed = map { $_ => 1 } grep { $client_end{$_} eq 'committed' } keys %client_end;
    my %in_log;
    for my $id (keys %res) {
        my %et = map { $_->[0] => 1 } @{ $res{$id}{ends} };
        $in_log{$_}++ for keys %et;
    }
    is($types{StockAdjusted} // 0, $n_ok{adjust} // 0,
       'StockAdjusted events = adjustments acknowledged');
    my $setup = 0;
    $setup += $_ for values %setup_counts;
    is($types{StockCounted} // 0, ($n_ok{put} // 0) + $setup,
       'StockCounted events = PUTs acknowledged');
    is($types{StockTransferredOut} // 0, $n_ok{transfer} // 0,
       'StockTransferredOut events = transfers acknowledged');
    is($types{StockTransferredIn} // 0, $n_ok{transfer} // 0,
       'StockTransferredIn events = transfers acknowledged');
    is(scalar(keys %res), scalar(keys %client_res),
       'reservations in the log = reservations acknowledged');
    is($in_log{ReservationCommitted} // 0, scalar(keys %committed),
       'committed reservations in the log = commits acknowledged');
    is($in_log{ReservationReleased} // 0,
       scalar(grep { $client_end{$_} eq 'released' } keys %client_end),
       'released reservations in the log = releases acknowledged');
    diag "LowStockDetected events checked: $low_checked";
}

diag sprintf 'total %.1f s', time - $T0;
$n->stop;
done_testing;
