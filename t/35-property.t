# Randomized property test: ~10 s of a random mix of every write (counts
# with safety stock and backorder limits, adjustments of every state, moves
# between states, reservations and carts with short TTLs (backordered ones
# included), commits, releases, transfers, If-Match, Idempotency-Key
# retries) from 10 concurrent clients, each on two kinds of items:
#
# * 8 shared items, which every client writes: every answer is checked
#   (status, problem code, the item's invariants);
# * 4 items of its own per client, which no other client touches: there a
#   model (a Perl copy of the rules) predicts every answer, and after every
#   step the client reads each item it touched and its new events: the
#   answer must be the one predicted (status, problem code, available,
#   short lines, current_version), the events appended exactly the
#   predicted ones (types, data with reason/reference/actor, one
#   transaction: consecutive seqs ending at Inventory-Seq), the item equal
#   to the model in every field (available, low_stock, seq = its latest
#   event's, version, updated_at) and within the invariants, a refused
#   write must have appended nothing and changed nothing. Expiries come
#   from the sweeper at a time of its own: the model takes them from the
#   item's log (each after its reservation's expires_at) and predicts the
#   write from the state it was decided on (the events before the write's
#   seq); a commit or release sent around expires_at may go either way.
#
# Once every reservation has expired, every invariant of the contract is
# checked on all the items against their event logs (replayed from the
# empty state: states, settings, moves, invariants after every event), the
# reservations and what the clients were told.
#
# SEED=n reproduces a run's choices (the interleaving, and with it when
# expiries happen, is up to the machine); PROP_SECONDS (10) and
# PROP_CHILDREN (10) size it, PROP_OWN_SHARE (0.3) is the share of steps
# on the own items (one costs about 4 requests, a shared one about 1).  A
# model problem stops that client's own steps and is reported with its
# last steps.
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
my $OWN_SHARE = $ENV{PROP_OWN_SHARE} // 0.3;   # of the steps: own items

my $n = InvTest->start(workers => 4,
                       location_extra => 'inventory_actor $http_x_actor;');
my $T0 = time;

my @SKUS = map { "P-$_" } 1 .. 4;
my @LOCS = qw(L-a L-b);
my @ITEMS = map { my $s = $_; map { [$s, $_] } @LOCS } @SKUS;
my $ABSENT = 'P-4/L-b';       # created only by adjustments or transfers

# a client's own items: M<ci>-1 and M<ci>-2 at both locations; M<ci>-2/L-b
# does not exist at first
sub own_skus { map { "M$_[0]-$_" } 1 .. 2 }
sub own_items { map { my $s = $_; map { "$s/$_" } @LOCS } own_skus($_[0]) }
sub own_absent { "M$_[0]-2/L-b" }
my @ALL = ((map { "$_->[0]/$_->[1]" } @ITEMS),
           map { own_items($_) } 0 .. $CHILDREN - 1);
# (a client's other items are counted by its first steps, and the model
# checks each of its steps: a client stopped early may not have got there)
my %MAY_BE_ABSENT = map { $_ => 1 } $ABSENT,
                                    map { own_items($_) } 0 .. $CHILDREN - 1;

my @STATES = qw(available damaged quality_control incoming);
my @TO_STATES = qw(available damaged quality_control);

# --- setup ---------------------------------------------------------------------
my %setup_counts;             # StockCounted events appended by the setup
for my $it (@ITEMS) {
    my ($s, $l) = @$it;
    next if "$s/$l" eq $ABSENT;
    my %b = (on_hand => 5 + int rand 26, min_level => int rand 9);
    $b{safety_stock} = int rand 4 if rand() < 0.5;
    $b{backorder_limit} = int rand 6 if rand() < 0.5;
    my $r = $n->req(PUT => "/v1/inventory/$s/$l", json => \%b);
    is($r->{status}, 201, "setup: $s/$l") or diag InvTest::show($r);
    $setup_counts{"$s/$l"}++;
}

# =============================================================================
# The model of one item and of the rules (a client's own items)
# =============================================================================

my @QTY = qw(on_hand reserved damaged quality_control safety_stock incoming
             backorder_limit);
my %HELD = map { $_ => 1 } qw(damaged quality_control incoming);

sub m_new {
    return { (map { $_ => 0 } @QTY, 'min_level'), version => 0, seq => 0,
             updated_at => undef };
}
sub m_sellable { $_[0]{on_hand} - $_[0]{damaged} - $_[0]{quality_control} }
sub m_avail { m_sellable($_[0]) - $_[0]{safety_stock} - $_[0]{reserved} }
sub m_low { m_avail($_[0]) < $_[0]{min_level} }
# the invariants
sub m_valid {
    my ($m) = @_;
    return !grep({ $m->{$_} < 0 } @QTY, 'min_level')
           && m_sellable($m) >= 0
           && $m->{reserved} <= m_sellable($m) + $m->{backorder_limit};
}
# what a state holds, as a move from it sees it
sub m_holds {
    my ($m, $st) = @_;
    return $st eq 'available' ? m_avail($m) : $m->{$st};
}

# the effect of one event on the quantities
sub m_apply {
    my ($m, $type, $d) = @_;
    my $q = $d->{quantity};
    if ($type eq 'StockCounted') {
        $m->{$_} = $d->{$_}
            for qw(on_hand min_level safety_stock backorder_limit);
    } elsif ($type eq 'StockAdjusted') {
        $m->{on_hand} += $d->{delta} unless $d->{state} eq 'incoming';
        $m->{ $d->{state} } += $d->{delta} if $HELD{ $d->{state} };
    } elsif ($type eq 'StockMoved') {
        $m->{on_hand} += $q if $d->{from} eq 'incoming';
        $m->{ $d->{from} } -= $q if $HELD{ $d->{from} };
        $m->{ $d->{to} } += $q if $HELD{ $d->{to} };
    } elsif ($type eq 'StockReserved') {
        $m->{reserved} += $q;
    } elsif ($type eq 'ReservationCommitted') {
        $m->{reserved} -= $q;
        $m->{on_hand} -= $q;
    } elsif ($type eq 'ReservationReleased' || $type eq 'ReservationExpired') {
        $m->{reserved} -= $q;
    } elsif ($type eq 'StockTransferredOut') {
        $m->{on_hand} -= $q;
    } elsif ($type eq 'StockTransferredIn') {
        $m->{on_hand} += $q;
    }
    $m->{version}++;
}

# data compared member by member (numbers as numbers)
sub data_str {
    my ($d) = @_;
    return join ',', map { "$_=" . ($d->{$_} // 'null') } sort keys %$d;
}

# A write's outcomes as the model decides them on the items as they were
# when the server decided it: a list (more than one when the time decides:
# a commit or release sent around its reservation's expires_at) of
# { status, code, ev => [[key, type, data], ...], items => {key => item},
#   res => {id => reservation}, and what the answer must hold }.
#   $M: key => item (undef: does not exist); $R: id => reservation;
#   $op: the request; $r: the answer (for a new reservation's id only);
#   $t0, $t1: when it was sent and answered.
my $LAG_MS = 1500;    # how far the server's clock for a decision may lag
sub predict {
    my ($M, $R, $op, $r, $t0, $t1) = @_;
    my $b = $op->{body} // {};
    my %L = %{ $op->{ledger} };
    my (%c, @ev);
    my $item = sub {
        my ($k) = @_;
        $c{$k} //= $M->{$k} ? { %{ $M->{$k} } } : m_new();
        return $c{$k};
    };
    my $emit = sub {
        my ($k, $type, $d) = @_;
        my $m = $item->($k);
        my $was = m_low($m);
        m_apply($m, $type, $d);
        push @ev, [ $k, $type, $d ];
        if (!$was && m_low($m)) {
            push @ev, [ $k, 'LowStockDetected',
                        { available => m_avail($m),
                          min_level => $m->{min_level}, %L } ];
            $m->{version}++;
        }
    };
    my $no = sub { my ($status, $code, %x) = @_;
                   +{ status => $status, code => $code, ev => [], items => {},
                      res => {}, %x } };
    my $yes = sub { my ($status, %x) = @_;
                    +{ status => $status, ev => \@ev, items => \%c,
                       res => {}, %x } };
    # 409 with the item's available (undef: not checked)
    my $short = sub { $no->(409, 'insufficient-stock', available => $_[0]) };
    my $kind = $op->{kind};
    my $k = $op->{key};
    my $m = defined $k ? $M->{$k} : undef;

    # the body is checked before the store is asked
    return $no->(400, 'invalid-request', field => $op->{bad}) if $op->{bad};
    if (defined $op->{if_match}) {
        return $no->(412, 'version-mismatch') unless $m;
        return $no->(412, 'version-mismatch',
                     current_version => $m->{version})
            unless $op->{if_match} eq '*' || $op->{if_match} == $m->{version};
    }

    if ($kind eq 'put') {
        my $p = $m // m_new();
        $emit->($k, 'StockCounted', {
            on_hand => $b->{on_hand},
            (map { $_ => $b->{$_} // $p->{$_} }
                 qw(min_level safety_stock backorder_limit)), %L });
        return $short->(m_avail($p)) unless m_valid($c{$k});
        return $yes->($m ? 200 : 201, item => [$k]);
    }
    if ($kind eq 'adjust') {
        return $no->(404, 'not-found') if !$m && $b->{delta} < 0;
        $emit->($k, 'StockAdjusted', { delta => $b->{delta},
                                       state => $b->{state} // 'available',
                                       %L });
        return $short->($m && m_avail($m)) unless m_valid($c{$k});
        return $yes->($m ? 200 : 201, item => [$k]);
    }
    if ($kind eq 'move') {
        return $no->(404, 'not-found') unless $m;
        return $short->(m_avail($m))
            if $b->{quantity} > m_holds($m, $b->{from});
        $emit->($k, 'StockMoved', { from => $b->{from}, to => $b->{to},
                                    quantity => $b->{quantity}, %L });
        return $short->(m_avail($m)) unless m_valid($c{$k});
        return $yes->(200, item => [$k]);
    }
    if ($kind eq 'reserve' || $kind eq 'cart') {
        my @lines = @{ $op->{lines} };
        return $no->(404, 'not-found') if grep { !$M->{ $_->[0] } } @lines;
        my %sum;
        $sum{ $_->[0] } += $_->[1] for @lines;
        my @short = grep { $sum{$_} > m_avail($M->{$_})
                                      + $M->{$_}{backorder_limit} }
                    sort keys %sum;
        if (@short) {
            return $short->(m_avail($m)) if $kind eq 'reserve';
            return $no->(409, 'insufficient-stock',
                         lines => { map { $_ => $sum{$_} } @short });
        }
        my $id = ref $r->{json} eq 'HASH' ? $r->{json}{id} // '?' : '?';
        $emit->($_->[0], 'StockReserved', { reservation_id => $id,
                                            quantity => $_->[1], %L })
            for @lines;
        return $short->($m && m_avail($m)) if grep { !m_valid($_) } values %c;
        return $yes->(201, res => { $id => {
            id => $id, lines => [ map { [@$_] } @lines ], state => 'active',
            reference => $L{reference}, left => [ map { [@$_] } @lines ],
        } });
    }
    if ($kind eq 'commit' || $kind eq 'release') {
        my $x = $R->{ $op->{id} };
        my $not = $no->(409, 'reservation-not-active');
        return $not unless $x->{state} eq 'active';
        my @out;
        # the server's clock lags, never leads: answered before
        # expires_at, it was active; sent long after, it was not
        push @out, $not unless $t1 * 1000 < $x->{expires_ms} - 5;
        return @out if $t0 * 1000 - $LAG_MS >= $x->{expires_ms};
        my %sum;
        $sum{ $_->[0] } += $_->[1] for @{ $x->{lines} };
        my @short = grep { $sum{$_} > m_sellable($M->{$_}) } sort keys %sum;
        if ($kind eq 'commit' && @short) {
            return (@out, $no->(409, 'insufficient-stock',
                                lines => { map { $_ => $sum{$_} } @short }));
        }
        # the commit's or release's reason and actor; its reference, or
        # else the reservation's
        my $ref = $b->{reference} // $x->{reference};
        my %d = ((defined $b->{reason} ? (reason => $b->{reason}) : ()),
                 (defined $ref ? (reference => $ref) : ()),
                 (defined $L{actor} ? (actor => $L{actor}) : ()));
        my $type = $kind eq 'commit' ? 'ReservationCommitted'
                                     : 'ReservationReleased';
        $emit->($_->[0], $type, { reservation_id => $x->{id},
                                  quantity => $_->[1], %d })
            for @{ $x->{lines} };
        return (@out, $yes->(200, res => { $x->{id} => {
            %$x, state => $kind eq 'commit' ? 'committed' : 'released',
            left => [] } }));
    }
    if ($kind eq 'transfer') {
        my ($from, $to) = @{ $op->{keys} };
        return $no->(404, 'not-found') unless $M->{$from};
        return $short->(m_avail($M->{$from}))
            if $b->{quantity} > m_avail($M->{$from});
        $emit->($from, 'StockTransferredOut',
                { quantity => $b->{quantity}, to => $b->{to}, %L });
        $emit->($to, 'StockTransferredIn',
                { quantity => $b->{quantity}, from => $b->{from}, %L });
        return $short->(m_avail($M->{$from})) if grep { !m_valid($_) } values %c;
        return $yes->(200, item => [$from, $to]);
    }
    die "predict: $kind";
}

# =============================================================================
# The random clients
# =============================================================================

my %OK = (
    get      => { 200 => 1, 404 => 'not-found' },
    put      => { 200 => 1, 201 => 1, 409 => 'insufficient-stock',
                  412 => 'version-mismatch' },
    adjust   => { 200 => 1, 201 => 1, 404 => 'not-found',
                  409 => 'insufficient-stock', 412 => 'version-mismatch' },
    move     => { 200 => 1, 400 => 'invalid-request', 404 => 'not-found',
                  409 => 'insufficient-stock', 412 => 'version-mismatch' },
    reserve  => { 201 => 1, 404 => 'not-found', 409 => 'insufficient-stock',
                  412 => 'version-mismatch' },
    cart     => { 201 => 1, 404 => 'not-found', 409 => 'insufficient-stock' },
    commit   => { 200 => 1, 409 => 'reservation-not-active|insufficient-stock' },
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
    # the response (replays with an Idempotency-Key are checked here).
    # $kind 'own move' counts as its own in the figures, checked as 'move'.
    my $send = sub {
        my ($label, $method, $path, %o) = @_;
        (my $kind = $label) =~ s/^own //;
        my $idem = $method ne 'GET' && rand() < 0.1;
        $o{headers}{'Idempotency-Key'} = "p$SEED-$ci-" . ++$keyn if $idem;
        my $r = $n->req($method, $path, %o);
        my $ok = $OK{$kind}{ $r->{status} };
        $st{"$label $r->{status}"}++;
        if (!$ok) {
            push @bad, "$label unexpected: " . InvTest::show($r);
        } elsif ($ok ne '1') {
            push @bad, "$label $r->{status} not a $ok problem: " . InvTest::show($r)
                unless $r->{content_type} =~ m{^application/problem\+json}
                       && ref $r->{json} eq 'HASH'
                       && ($r->{json}{code} // '') =~ /^(?:$ok)\z/
                       && ($r->{json}{status} // 0) == $r->{status};
        } else {
            push @bad, "$label $r->{status} not JSON: " . InvTest::show($r)
                unless ref $r->{json} eq 'HASH';
        }
        push @bad, "$label answered Idempotent-Replayed without a key"
            if !$idem && exists $r->{headers}{'idempotent-replayed'};
        if ($idem) {
            my $again = $n->req($method, $path, %o);
            $st{"$label replay"}++;
            # the first answer is in: the key is no longer in flight
            if ($again->{status} == 409
                && ($again->{json}{code} // '') eq 'idempotency-key-in-flight')
            {
                $st{"$label replay: 409 in flight"}++;
                push @late, "$label: " . InvTest::show($again);
                return $r;
            }
            # a 400 is not stored: the retry runs again, and fails again
            my $stored = $r->{status} != 400;
            push @bad, "$label retry with the key not "
                       . ($stored ? 'replayed' : 'refused again, unstored') . ': '
                       . InvTest::show($r) . "\n--- retry: " . InvTest::show($again)
                unless $again->{status} == $r->{status}
                       && $again->{body} eq $r->{body}
                       && ($again->{headers}{'idempotent-replayed'} // '') eq
                          ($stored ? 'true' : '');
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
        my ($r, $list) = @_;
        my $j = $r->{json};
        return unless $r->{status} == 201 && ref $j eq 'HASH' && defined $j->{id};
        return if ($r->{headers}{'idempotent-replayed'} // '') eq 'true';
        unless (($j->{state} // '') eq 'active' && ref $j->{lines} eq 'ARRAY') {
            push @bad, 'reservation 201 malformed: ' . $r->{body};
            return;
        }
        push @{ $list // \@mine }, $j->{id};
        $seen{ $j->{id} } = 1;
        my $e = (ts_ms($j->{expires_at}) // 0) / 1000;
        $last_exp = $e if $e > $last_exp;
    };
    my $ledger = sub {
        my %l;
        $l{reason} = (qw(count damaged po return))[rand 4] if rand() < 0.25;
        $l{reference} = "ref:$ci-" . int(rand 100) if rand() < 0.25;
        return %l;
    };

    # --- the shared items: any client, checked answer by answer -----------------
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
            $b{safety_stock} = int rand 4 if rand() < 0.3;
            $b{backorder_limit} = int rand 6 if rand() < 0.3;
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
            my %b = (delta => $d);
            $b{state} = $STATES[rand @STATES] if rand() < 0.35;
            my $r = $send->('adjust', POST => "/v1/inventory/$s/$l/adjustments",
                            json => \%b, headers => \%h);
            $match_check->('adjust', \%h, $r, $r->{json});
            if ($r->{status} =~ /^20[01]\z/) {
                $item_check->($r->{json}, 'adjust');
                $n_ok{adjust}++ unless $r->{headers}{'idempotent-replayed'};
                push @bad, 'adjustment 201 on an item that existed before'
                    if $r->{status} == 201 && "$s/$l" ne $ABSENT;
            }
        } ],
        [ 8, sub {                                        # move
            my ($s, $l) = $item->();
            my %h = $if_match->("$s/$l");
            my $f = $STATES[rand @STATES];
            my @to = grep { $_ ne $f } @TO_STATES;
            my $t = $to[rand @to];
            my $invalid = rand() < 0.08;
            $t = rand() < 0.5 ? $f : 'incoming' if $invalid;
            my $r = $send->('move', POST => "/v1/inventory/$s/$l/moves",
                            json => { from => $f, to => $t,
                                      quantity => 1 + int rand 4 },
                            headers => \%h);
            push @bad, "move from $f to $t: " . ($invalid ? 'not ' : '')
                       . '400: ' . InvTest::show($r)
                if $invalid != ($r->{status} == 400);
            $match_check->('move', \%h, $r, $r->{json});
            if ($r->{status} == 200) {
                $item_check->($r->{json}, 'move');
                $n_ok{move}++ unless $r->{headers}{'idempotent-replayed'};
            }
        } ],
        [ 18, sub {                                       # item reservation
            my ($s, $l) = $item->();
            my %h = $if_match->("$s/$l");
            my %b = (quantity => 1 + int rand 5, ttl_seconds => $ttl->());
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

    # --- this client's own items: the model, step by step -----------------------
    my (%M, %R, @own_res, @hist, $broken);
    my $nstep = 0;
    my @own = own_items($ci);
    $M{$_} = undef for @own;
    my %fail_kind;                # what the model saw, for the figures

    # one problem stops the model (what follows would only repeat it)
    my $model_bad = sub {
        my ($what) = @_;
        return if $broken;
        $broken = 1;
        push @bad, "client $ci own step $nstep: $what\n--- its last steps:\n"
                   . join("\n", @hist[($#hist > 7 ? $#hist - 7 : 0) .. $#hist]);
    };
    my $same_item = sub {            # the server's item = the model's?
        my ($j, $k, $what) = @_;
        my $m = $M{$k};
        my @p = InvTest::item_problems($j);
        return $model_bad->("$what $k: item problems: @p: " . encode_json($j))
            if @p;
        my ($s, $l) = split m{/}, $k;
        my %want = (%$m, available => m_avail($m), sku => $s, location => $l);
        for my $f (sort keys %want) {
            next if $f eq 'low_stock';
            my ($g, $w) = ($j->{$f} // 'null', $want{$f} // 'null');
            push @p, "$f $g, model $w"
                if $f =~ /^(?:sku|location|updated_at)\z/ ? $g ne $w : $g != $w;
        }
        push @p, 'low_stock ' . ($j->{low_stock} ? 'true' : 'false')
            if (!!$j->{low_stock}) != (!!m_low($m));
        $model_bad->("$what $k differs from the model: " . join('; ', @p)
                     . "\n  server: " . encode_json($j)) if @p;
        return !@p;
    };
    # an event of the log applied to the model item
    my $take = sub {
        my ($k, $e, $type, $d) = @_;
        m_apply($M{$k} //= m_new(), $type, $d);
        $M{$k}{version} = $e->{version};
        $M{$k}{seq} = $e->{seq};
        $M{$k}{updated_at} = $e->{at};
    };
    # a ReservationExpired in the log, written by the sweeper
    my $expiry = sub {
        my ($k, $e) = @_;
        my $d = $e->{data};
        my $x = $R{ $d->{reservation_id} // '' };
        my $tag = "$k v$e->{version} seq $e->{seq} ReservationExpired "
                  . data_str($d);
        return $model_bad->("$tag: not a reservation of this client")
            unless $x;
        return $model_bad->("$tag: the reservation is $x->{state}")
            unless $x->{state} =~ /^(?:active|expired)\z/;
        my ($i) = grep { $x->{left}[$_][0] eq $k
                         && $x->{left}[$_][1] == ($d->{quantity} // -1) }
                  0 .. $#{ $x->{left} };
        return $model_bad->("$tag: no such line left to expire") unless defined $i;
        splice @{ $x->{left} }, $i, 1;
        my $want = { reservation_id => $x->{id}, quantity => $d->{quantity},
                     (defined $x->{reference} ? (reference => $x->{reference})
                                              : ()) };
        return $model_bad->("$tag: data, expected " . data_str($want))
            unless data_str($d) eq data_str($want);
        my $at = ts_ms($e->{at}) // 0;
        return $model_bad->("$tag: at $e->{at}, before expires_at")
            if $at < $x->{expires_ms};
        $x->{state} = 'expired';
        $fail_kind{expired}++;
        $take->($k, $e, 'ReservationExpired', $d);
        return 1;
    };
    # the item's events after the model's version (404: none, no item)
    my $events_after = sub {
        my ($k) = @_;
        my $v = $M{$k} ? $M{$k}{version} : 0;
        my $r = $n->req(GET => "/v1/inventory/$k/events?after_version=$v&limit=1000");
        return [] if $r->{status} == 404 && !$M{$k};
        unless ($r->{status} == 200 && ref $r->{json} eq 'HASH'
                && ref $r->{json}{events} eq 'ARRAY'
                && !defined $r->{json}{next_after_version})
        {
            $model_bad->("$k events after $v: " . InvTest::show($r));
            return;
        }
        my @ev = @{ $r->{json}{events} };
        for my $i (0 .. $#ev) {
            my $e = $ev[$i];
            return $model_bad->("$k events after $v: version "
                                . ($e->{version} // 'null') . ' at '
                                . ($i + 1) . ': ' . encode_json($e))
                unless ($e->{version} // -1) == $v + $i + 1
                       && ($e->{sku} // '') . '/' . ($e->{location} // '') eq $k
                       && ref $e->{data} eq 'HASH';
        }
        return \@ev;
    };

    # one step: send $op, read back the items it touched and their events,
    # and hold both against what the model predicts
    my $step = sub {
        my ($op) = @_;
        $nstep++;
        my %h = %{ $op->{headers} // {} };
        $h{'If-Match'} = $op->{if_match} =~ /^\d+\z/ ? qq{"$op->{if_match}"}
                                                     : $op->{if_match}
            if defined $op->{if_match};
        $h{'X-Actor'} = $op->{ledger}{actor} if defined $op->{ledger}{actor};
        my %l = %{ $op->{ledger} };
        delete $l{actor};
        my $body = $op->{body} ? { %{ $op->{body} }, %l } : %l ? \%l : undef;
        my $t0 = time;
        my $r = $send->("own $op->{kind}", $op->{method}, $op->{path},
                        (defined $body ? (json => $body) : ()), headers => \%h);
        my $t1 = time;
        my $S = $r->{headers}{'inventory-seq'};
        my $code = ref $r->{json} eq 'HASH' ? $r->{json}{code} // '' : '';
        push @hist, "#$nstep $op->{method} $op->{path} "
                    . (defined $body ? encode_json($body) : '')
                    . (%h ? ' ' . encode_json(\%h) : '')
                    . " -> $r->{status} $code (Inventory-Seq "
                    . ($S // 'none') . ')';
        shift @hist if @hist > 30;

        # what the end of the test counts: what the clients were told
        my $j = $r->{json};
        if ($r->{status} =~ /^20[01]\z/ && ref $j eq 'HASH'
            && !$r->{headers}{'idempotent-replayed'})
        {
            $n_ok{ $op->{kind} }++
                if $op->{kind} =~ /^(?:put|adjust|move|transfer)\z/;
            if ($r->{status} == 201 && $op->{lines} && defined $j->{id}) {
                push @own_res, $j->{id};
                my $e = (ts_ms($j->{expires_at}) // 0) / 1000;
                $last_exp = $e if $e > $last_exp;
            }
            push @ended, [ $op->{id}, $j->{state} // '?' ] if $op->{id};
        }

        # what the server holds now: the items, then their new events
        my (%g, %ev);
        for my $k (@{ $op->{keys} }) {
            $g{$k} = $n->req(GET => "/v1/inventory/$k");
        }
        for my $k (@{ $op->{keys} }) {
            $ev{$k} = $events_after->($k) // return;
        }
        my @all = sort { $a->[1]{seq} <=> $b->[1]{seq} }
                  map { my $k = $_; map { [ $k, $_ ] } @{ $ev{$k} } }
                  @{ $op->{keys} };
        $hist[-1] .= "\n    events: " . join(' ', map {
            "$_->[0] v$_->[1]{version}/s$_->[1]{seq} $_->[1]{type}"
        } @all) if @all;
        my @w = grep { $_->[1]{type} ne 'ReservationExpired' } @all;
        my $cut = @w ? $w[0][1]{seq} : defined $S ? $S + 1 : 0;
        if (@w) {
            return $model_bad->("its events end at seq $w[-1][1]{seq}, "
                                . 'Inventory-Seq is ' . ($S // 'none'))
                unless defined $S && $w[-1][1]{seq} == $S;
            return $model_bad->('its events are not one run of seqs')
                unless $w[-1][1]{seq} - $w[0][1]{seq} == $#w;
        }
        my @pre = grep { $_->[1]{seq} < $cut } @all;
        my @post = grep { $_->[1]{seq} > ($S // -1) && $_->[1]{seq} >= $cut }
                   @all;
        return $model_bad->('an expiry inside the write\'s events')
            if @pre + @w + @post != @all;
        for (@pre) { $expiry->(@$_) or return }

        # the outcome
        my @can = predict(\%M, \%R, $op, $r, $t0, $t1);
        my ($o) = grep { $_->{status} == $r->{status}
                         && ($_->{code} // '') eq $code } @can;
        unless ($o) {
            return $model_bad->('answered ' . InvTest::show($r)
                . "\n  the model: " . join(' or ', map {
                      "$_->{status} " . ($_->{code} // '') . ' with '
                      . join(' ', map { "$_->[0] $_->[1] " . data_str($_->[2]) }
                                  @{ $_->{ev} })
                  } @can));
        }
        my $want = join "\n", map { "$_->[0] $_->[1] " . data_str($_->[2]) }
                              @{ $o->{ev} };
        my $got = join "\n", map { "$_->[0] $_->[1]{type} "
                                   . data_str($_->[1]{data}) } @w;
        return $model_bad->("appended\n$got\n  the model:\n$want")
            unless $got eq $want;
        for my $i (0 .. $#w) {
            my ($k, $e) = @{ $w[$i] };
            $take->($k, $e, $e->{type}, $e->{data});
        }
        for my $k (keys %{ $o->{items} }) {
            my @d = grep { $M{$k}{$_} != $o->{items}{$k}{$_} }
                    @QTY, 'min_level', 'version';
            return $model_bad->("$k after its events: @d differ from the "
                                . 'model\'s decision') if @d;
        }
        $fail_kind{ "$op->{kind} " . ($o->{code} // $o->{status})
                    . (@can > 1 ? ' (around expires_at)' : '')
                    . ($o->{status} == 201 && $op->{lines}
                       && grep({ m_avail($M{$_}) < 0 } keys %{ $o->{items} })
                       ? ' (backordered: available below 0)' : '') }++;
        %R = (%R, %{ $o->{res} });

        # the answer
        if ($o->{item}) {
            my @x = @{ $o->{item} };
            if (@x == 1) {
                $same_item->($j, $x[0], 'the answer') or return;
            } else {
                $same_item->($j->{from}, $x[0], 'the answer\'s from') or return;
                $same_item->($j->{to}, $x[1], 'the answer\'s to') or return;
            }
        }
        if ($r->{status} == 201 && $op->{lines}) {
            my $x = $R{ $j->{id} } // return $model_bad->('no id');
            $x->{expires_ms} = ts_ms($j->{expires_at}) // 0;
            my $lw = join ' ', map { "$_->[0]=$_->[1]" } @{ $x->{lines} };
            my $lg = join ' ', map { "$_->{sku}/$_->{location}=$_->{quantity}" }
                               @{ ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [] };
            return $model_bad->("reservation lines $lg, asked $lw")
                unless $lw eq $lg && ($j->{state} // '') eq 'active';
        }
        if ($op->{id} && $r->{status} == 200) {
            my $x = $R{ $op->{id} };
            return $model_bad->("the reservation is $j->{state}, model $x->{state}")
                unless ($j->{state} // '') eq $x->{state};
        }
        if (defined $o->{available}
            && ($j->{available} // 'null') ne $o->{available})
        {
            return $model_bad->("409 with available " . ($j->{available} // 'null')
                                . ", model $o->{available}");
        }
        if ($o->{lines}) {
            my $lw = join ' ', map { "$_=$o->{lines}{$_}" } sort keys %{ $o->{lines} };
            my $lg = join ' ', sort map { "$_->{sku}/$_->{location}=$_->{quantity}" }
                               @{ ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [] };
            return $model_bad->("409 names lines $lg, model $lw") if $lw ne $lg;
        }
        if (defined $o->{current_version}
            && ($j->{current_version} // -1) != $o->{current_version})
        {
            return $model_bad->('412 with current_version '
                                . ($j->{current_version} // 'null'));
        }
        if (defined $o->{field}) {
            my @f = map { $_->{field} // '' }
                    @{ ref $j->{errors} eq 'ARRAY' ? $j->{errors} : [] };
            return $model_bad->("400 names fields (@f), expected $o->{field}")
                unless grep { $_ eq $o->{field} } @f;
        }

        # what a read sees now: the model with the expiries before its seq
        for my $k (@{ $op->{keys} }) {
            my $gs = $g{$k}{headers}{'inventory-seq'} // -1;
            return $model_bad->("GET $k: Inventory-Seq $gs before the write's $S")
                if defined $S && $gs < $S;
            for (grep { $_->[0] eq $k && $_->[1]{seq} <= $gs } @post) {
                $expiry->(@$_) or return;
            }
            if (!$M{$k}) {
                return $model_bad->("GET $k: " . InvTest::show($g{$k})
                                    . ', the model has no such item')
                    unless $g{$k}{status} == 404;
            } else {
                return $model_bad->("GET $k: " . InvTest::show($g{$k}))
                    unless $g{$k}{status} == 200;
                $same_item->($g{$k}{json}, $k, 'GET') or return;
            }
            for (grep { $_->[0] eq $k && $_->[1]{seq} > $gs } @post) {
                $expiry->(@$_) or return;
            }
        }
        return 1;
    };

    # --- the own steps: random, leaning on the bounds of each rule ------------
    # near($x): $x - 1, $x or $x + 1 (at least $min)
    my $near = sub { my ($x, $min) = @_; my $v = $x + int(rand 3) - 1;
                     $v < ($min // 0) ? $min // 0 : $v };
    my $own_key = sub { $own[rand @own] };
    my $own_ledger = sub {
        my %l = $ledger->();
        $l{actor} = "client-$ci" if rand() < 0.3;
        return \%l;
    };
    my $own_if_match = sub {
        my ($k, $create_ok) = @_;
        my $m = $M{$k};
        my $x = rand;
        return undef if $x < 0.8;
        return $create_ok ? '*' : undef unless $m;
        return '*' if $x < 0.85;
        return $m->{version} - ($x < 0.97 ? 0 : 1) || 1;
    };
    my $qty = sub {            # the bound, or a small random quantity
        my ($bound, $min) = @_;
        return rand() < 0.5 ? $near->($bound, $min // 1) : 1 + int rand 5;
    };
    my %own_op = (
        put => sub {
            my $k = $own_key->();
            my $m = $M{$k} // m_new();
            my %b;
            $b{min_level} = int rand 10 if rand() < 0.5;
            $b{safety_stock} = int rand 5 if rand() < 0.4;
            my $bl = $m->{backorder_limit};
            if (rand() < 0.4) {
                $bl = $b{backorder_limit} = rand() < 0.5
                    ? int rand 7
                    : $near->($m->{reserved} - m_sellable($m));
            }
            # on_hand: random, or about the least the invariants allow
            my $least = $m->{damaged} + $m->{quality_control}
                        + ($m->{reserved} > $bl ? $m->{reserved} - $bl : 0);
            $b{on_hand} = rand() < 0.4 ? int rand 26 : $near->($least);
            return { kind => 'put', key => $k, keys => [$k], method => 'PUT',
                     path => "/v1/inventory/$k", body => \%b,
                     if_match => $own_if_match->($k, 1) };
        },
        adjust => sub {
            my $k = $own_key->();
            my $m = $M{$k};
            my $st = (qw(available available damaged quality_control
                         incoming))[rand 5];
            my $d = 0;
            if ($m && rand() < 0.5) {
                # as far down as the state can go, or one past it
                my $room = $st eq 'available'
                    ? m_sellable($m) - ($m->{reserved} > $m->{backorder_limit}
                                ? $m->{reserved} - $m->{backorder_limit} : 0)
                    : $m->{$st};
                $d = -$near->($room);
            }
            $d = int(rand 13) - 6 while !$d;
            $d = -$d if $st eq 'incoming' && $d < 0 && rand() < 0.5;
            my %b = (delta => $d);
            $b{state} = $st unless $st eq 'available' && rand() < 0.5;
            return { kind => 'adjust', key => $k, keys => [$k],
                     method => 'POST', path => "/v1/inventory/$k/adjustments",
                     body => \%b,
                     if_match => $own_if_match->($k, $d > 0) };
        },
        move => sub {
            my $k = $own_key->();
            my $m = $M{$k} // m_new();
            # mostly from a state that holds some
            my @has = grep { m_holds($m, $_) > 0 } @STATES;
            my $f = @has && rand() < 0.7 ? $has[rand @has]
                                         : $STATES[rand @STATES];
            my @to = grep { $_ ne $f } @TO_STATES;
            my $t = $to[rand @to];
            my $q = $qty->(m_holds($m, $f));
            my $bad;
            if (rand() < 0.08) {                    # not a move: 400
                my $x = int rand 4;
                ($t, $bad) = ('incoming', 'to') if $x == 0;
                ($t, $bad) = ($f, 'to') if $x == 1;
                ($q, $bad) = (0, 'quantity') if $x == 2;
                ($f, $bad) = ('lost', 'from') if $x == 3;
            }
            return { kind => 'move', key => $k, keys => [$k], method => 'POST',
                     path => "/v1/inventory/$k/moves", bad => $bad,
                     body => { from => $f, to => $t, quantity => $q },
                     if_match => $own_if_match->($k, 0) };
        },
        reserve => sub {
            my $k = $own_key->();
            my $m = $M{$k} // m_new();
            my $q = $qty->(m_avail($m) + $m->{backorder_limit});
            return { kind => 'reserve', key => $k, keys => [$k],
                     method => 'POST', path => "/v1/inventory/$k/reservations",
                     body => { quantity => $q, ttl_seconds => $ttl->() },
                     lines => [[ $k, $q ]],
                     if_match => $own_if_match->($k, 0) };
        },
        cart => sub {
            my @l = map { [ $own_key->(), 0 ] } 1 .. 1 + int rand 3;
            $l[-1][0] = $l[0][0] if @l > 1 && rand() < 0.25;
            my %cnt;
            $cnt{ $_->[0] }++ for @l;
            for my $x (@l) {
                my $m = $M{ $x->[0] } // m_new();
                my $room = m_avail($m) + $m->{backorder_limit};
                $x->[1] = $qty->(int($room / $cnt{ $x->[0] }));
            }
            my %k = map { $_->[0] => 1 } @l;
            return { kind => 'cart', keys => [ sort keys %k ], method => 'POST',
                     path => '/v1/reservations', lines => \@l,
                     body => { ttl_seconds => $ttl->(), lines => [ map {
                         my ($s, $loc) = split m{/}, $_->[0];
                         { sku => $s, location => $loc, quantity => $_->[1] }
                     } @l ] } };
        },
        (map { my $kind = $_; ($kind => sub {
            my @act = grep { $R{$_}{state} eq 'active' } @own_res;
            my @from = @act && rand() < 0.8 ? @act : @own_res;
            return unless @from;
            my $id = $from[rand @from];
            my %k = map { $_->[0] => 1 } @{ $R{$id}{lines} };
            return { kind => $kind, id => $id, keys => [ sort keys %k ],
                     method => 'POST', path => "/v1/reservations/$id/$kind",
                     body => rand() < 0.5 ? undef : {} };
        }) } qw(commit release)),
        transfer => sub {
            my @s = own_skus($ci);
            my $s = $s[rand @s];
            my ($from, $to) = rand() < 0.5 ? @LOCS : reverse @LOCS;
            my $m = $M{"$s/$from"} // m_new();
            return { kind => 'transfer', keys => [ "$s/$from", "$s/$to" ],
                     method => 'POST', path => '/v1/transfers',
                     body => { sku => $s, from => $from, to => $to,
                               quantity => $qty->(m_avail($m)) } };
        },
    );
    my @own_w = ([ put => 6 ], [ adjust => 12 ], [ move => 14 ],
                 [ reserve => 12 ], [ cart => 6 ], [ commit => 10 ],
                 [ release => 5 ], [ transfer => 6 ]);
    my $own_total = 0;
    $own_total += $_->[1] for @own_w;
    my $own_step = sub {
        my $op;
        # the first steps count the items (all but the absent one)
        if (my ($k) = grep { !$M{$_} && $_ ne own_absent($ci) } @own) {
            $op = { kind => 'put', key => $k, keys => [$k], method => 'PUT',
                    path => "/v1/inventory/$k",
                    body => { on_hand => 5 + int rand 20,
                              min_level => int rand 8,
                              safety_stock => int rand 3,
                              backorder_limit => int rand 5 } };
        } else {
            my $x = rand $own_total;
            my ($kind) = map { $_->[0] } grep { ($x -= $_->[1]) < 0 } @own_w;
            $op = $own_op{$kind}->() or return;
        }
        $op->{ledger} = $own_ledger->();
        if ($op->{id}) {
            # commit, release: reason and reference only in a body, if
            # there is one (their events name the reservation's otherwise)
            my %l = %{ $op->{ledger} };
            my $actor = delete $l{actor};
            $op->{body} &&= \%l;
            $op->{ledger} = defined $actor ? { actor => $actor } : {};
        }
        $step->($op);
    };

    my $total_w = 0;
    $total_w += $_->[0] for @ops;

    while (time < $t_end) {
        # an own step costs about 4 requests, a shared one 1: about half
        # of the time goes to each (PROP_OWN_SHARE)
        if (!$broken && rand() < $OWN_SHARE) {
            $own_step->();
        } else {
            my $x = rand $total_w;
            for my $op (@ops) {
                if (($x -= $op->[0]) < 0) { $op->[1]->(); last }
            }
        }
        last if @bad > 30;
    }
    $st{"own steps (model)"} = $nstep;
    $st{"own: $_"} = $fail_kind{$_} for keys %fail_kind;
    return encode_json({ st => \%st, bad => \@bad, late => \@late,
                         mine => [ @mine, @own_res ],
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
$nreq += $st{$_} for grep { !/^own(?: steps|:)/ } keys %st;
diag sprintf "%.1f s of traffic, %d requests (besides the reads of each "
    . "own step):\n%s", $ops_time, $nreq,
    join "\n", map { "  $_ x$st{$_}" } sort keys %st;
ok(!@bad, 'every answer during the run was allowed, well-formed, consistent, '
          . 'and on the own items what the model predicted')
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
ok(($st{'own steps (model)'} // 0) > 10 * $CHILDREN,
   'the model checked ' . ($st{'own steps (model)'} // 0) . ' steps');

# --- let every reservation expire (no traffic) ---------------------------------
my $t = time;
sleep_until($last_exp + 2.5);
diag sprintf 'waited %.1f s for the last expiry', time - $t;

# --- per item: projection, log, replay --------------------------------------------
my (%res, @seqs, %types, %xfer, @fail);
my $low_checked = 0;
for my $k (@ALL) {
    my ($s, $l) = split m{/}, $k;
    my $r = $n->req(GET => "/v1/inventory/$k");
    my ($ev, $pp) = event_pages($n, $s, $l, 97, missing_ok => $MAY_BE_ABSENT{$k});
    if ($r->{status} == 404 && $MAY_BE_ABSENT{$k} && !@$ev) {
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
    for my $f (qw(on_hand reserved damaged quality_control safety_stock
                  incoming backorder_limit min_level available version seq)) {
        push @p, "replay $f $rep->{$f} != item " . ($j->{$f} // 'null')
            unless ($j->{$f} // -1) == $rep->{$f};
    }
    push @p, "replay low_stock $rep->{low_stock} != item"
        unless (!!$j->{low_stock}) == (!!$rep->{low_stock});
    push @p, 'updated_at ' . ($j->{updated_at} // 'null') . ' != at of the last '
             . 'event ' . ($rep->{updated_at} // 'null')
        unless ($j->{updated_at} // '') eq ($rep->{updated_at} // '');
    ok(!@p, "$k: $rep->{version} events replay to the projection (on_hand "
            . "$rep->{on_hand}, reserved $rep->{reserved}, damaged "
            . "$rep->{damaged}, quality_control $rep->{quality_control}, "
            . "incoming $rep->{incoming}, available $rep->{available}, seq "
            . "$rep->{seq}); versions gap-free, seq increasing, invariants "
            . "after every event, LowStockDetected exactly after each "
            . "false->true")
        or diag join "\n", @p[0 .. ($#p > 20 ? 20 : $#p)];
    $low_checked += grep { $_->{type} eq 'LowStockDetected' } @$ev;

    for my $e (@$ev) {
        push @seqs, [ $e->{seq}, ts_ms($e->{at}) // 0 ];
        $types{ $e->{type} }++;
        my $d = $e->{data};
        $types{"StockAdjusted ($d->{state})"}++
            if $e->{type} eq 'StockAdjusted' && defined $d->{state};
        $types{"StockMoved ($d->{from} -> $d->{to})"}++
            if $e->{type} eq 'StockMoved';
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
ok(!grep({ !$types{"StockMoved ($_)"} }
         map { my $f = $_; map { "$f -> $_" } grep { $_ ne $f } @TO_STATES }
         @STATES)
   && !grep({ !$types{"StockAdjusted ($_)"} } @STATES),
   'the log holds a move of every allowed pair and an adjustment of every '
   . 'state');

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
    for my $k (@ALL) {
        my $r = $n->req(GET => "/v1/inventory/$k");
        next if $r->{status} == 404 && $MAY_BE_ABSENT{$k};
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
    is($types{StockMoved} // 0, $n_ok{move} // 0,
       'StockMoved events = moves acknowledged');
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
