# Replication: a primary P and two followers, A following P and B chained
# behind A (B follows A's /replication/).  Followers start with empty stores
# after P already holds items (each starts from a snapshot, then tails).
#
# * Health: role, store_id (32 lowercase hex, the same on all three), epoch
#   1; on a follower the replication object (primary URL, connected,
#   applied_seq, primary_seq, lag_ms).
# * $CLIENTS clients write a random mix of every write route to P for
#   $SECONDS s (counts with safety_stock and backorder_limit, adjustments
#   of every state, moves between states, reservations and carts, commits
#   and releases, transfers; a third with an Idempotency-Key, a third with
#   a reason and a reference).  A ledger client meanwhile runs a fixed
#   script on items of its own, every answer's status known in advance:
#   counts with the settings, adjustments of each state both ways, a move
#   of every allowed pair, backordered reservations and carts whose
#   commits are refused until receipts (moves from incoming, adjustments)
#   bring the stock, a transfer, a release, each write with a reason, a
#   reference and an actor (inventory_actor).  Every answer
#   decided against the store carries Inventory-Seq S (>= the seq of the
#   write's own last event, X-Event-Seq); right after it, a GET with
#   Inventory-Min-Seq: S on A or B sees the write (the item at that version
#   or later, every field the same at that version, the reservation in the
#   state the write left it, its reference and lines), with
#   Inventory-Seq >= S.  Another client polls B, A and P in that order:
#   each one's Inventory-Seq never goes back, B's <= A's <= P's, and on an
#   empty feed page Inventory-Seq is the page's last_seq.
# * Then both followers reach P's last seq; inventory-admin dump and
#   dump --all of the three stores are equal byte for byte, the log is
#   1..N, verify passes; every GET route answers the same bytes on the
#   three (the ledger client's items and their events with the ledger's
#   members, events by reference, items changed after a seq);
#   inventory-admin info; the replication metrics.
# * Writes to a follower (every write route, with and without a key) are
#   503 not-primary with Retry-After and "primary": the follow URL; nothing
#   changes anywhere.
# * Inventory-Min-Seq: at once on P; beyond the primary, 503 replica-behind
#   after the follow wait; a waiting read woken by the write it waits for;
#   304 carries Inventory-Seq.
# * A long poll of the feed on a follower (wait=5) is answered within
#   $WAKE s of the primary's answer to the write it waits for (each of
#   $WAKE_TRIES tries; the median within 0.1 s), on A and on B.
#
# INVENTORY_REPL_SECONDS, INVENTORY_REPL_CLIENTS size the load; SEED=n
# repeats the clients' choices.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use InvTest qw(encode_json decode_json json_type header parallel problem_ok
               random_write feed_pages last_seq wait_applied same_store_ok
               metrics admin_run async_wait items_snapshot unchanged);

my $SEED = int($ENV{SEED} // ((time * 1000 % 1e9) ^ $$));
diag "SEED=$SEED";
srand $SEED;

my $SAN = $ENV{INVENTORY_PRELOAD} ? 1 : 0;
my $SECONDS = $ENV{INVENTORY_REPL_SECONDS} // ($SAN ? 4 : 6);
my $CLIENTS = $ENV{INVENTORY_REPL_CLIENTS} // ($SAN ? 3 : 4);
my $WAIT = 3;                   # the followers' wait= (Inventory-Min-Seq)
my $WAKE = 1;                   # s: the bound of each long-poll try
my $WAKE_TRIES = 5;
my $REPL = 'location /replication/ { inventory_replication; }';
my @ITEMS = map { my $s = $_; map { "$s/$_" } qw(w1 w2 w3) } qw(R-1 R-2 R-3);
my $ABSENT = 'R-3/w3';          # created by adjustments or transfers only

my $T0 = time;
my $P = InvTest->start(workers => 2, server_extra => $REPL,
    location_extra => 'add_header X-Event-Seq $inventory_event_seq always; '
                      . 'inventory_actor $http_x_actor;');
my $PURL = $P->url('/replication/');

# --- P holds items before the followers start --------------------------------
for my $it (grep { $_ ne $ABSENT } @ITEMS) {
    my $r = $P->req(PUT => "/v1/inventory/$it",
                    json => { on_hand => 1000, min_level => 100 });
    is($r->{status}, 201, "setup: $it on P") or diag InvTest::show($r);
}
my $N0 = last_seq($P);

my $A = InvTest->start(workers => 2, server_extra => $REPL,
                       http_extra => "inventory_follow $PURL wait=${WAIT}s;");
my $AURL = $A->url('/replication/');
ok(wait_applied($A, $N0, 30), "A (empty store) catches up with P's $N0 "
   . 'events within 30 s');
my $B = InvTest->start(workers => 2,
                       http_extra => "inventory_follow $AURL wait=${WAIT}s;");
ok(wait_applied($B, $N0, 30), "B (empty store, chained behind A) catches "
   . "up within 30 s");

# health_ok($n, $role, $follow_url, $label, $seq): GET /v1/health: 200, the
# role, store_id, epoch 1; a follower's replication object (applied_seq and
# primary_seq equal to $seq when given); returns the JSON
sub health_ok {
    my ($n, $role, $url, $label, $seq) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $n->req(GET => '/v1/health');
    my $j = $r->{json};
    my @p;
    push @p, "status $r->{status}" unless $r->{status} == 200;
    if (ref $j ne 'HASH') {
        push @p, 'body is not a JSON object';
    } else {
        my %t = map { $_ => json_type($j->{$_}) } qw(role store_id epoch);
        push @p, "status member is not \"ok\""
            unless ($j->{status} // '') eq 'ok';
        push @p, "role is $t{role} " . ($j->{role} // 'null')
                 . ", expected \"$role\""
            unless $t{role} eq 'string' && $j->{role} eq $role;
        push @p, "store_id is $t{store_id} " . ($j->{store_id} // 'null')
                 . ', expected 32 lowercase hex digits'
            unless $t{store_id} eq 'string'
                   && $j->{store_id} =~ /\A[0-9a-f]{32}\z/;
        push @p, "epoch is $t{epoch} " . ($j->{epoch} // 'null')
                 . ', expected the number 1'
            unless $t{epoch} eq 'number' && $j->{epoch} == 1;
        push @p, 'no store object' unless ref $j->{store} eq 'HASH';
        if ($role eq 'primary') {
            push @p, 'a primary has a replication member'
                if exists $j->{replication};
        } elsif (ref $j->{replication} ne 'HASH') {
            push @p, 'a follower without a replication object';
        } else {
            my $x = $j->{replication};
            my %xt = map { $_ => json_type($x->{$_}) }
                     qw(primary connected applied_seq primary_seq lag_ms);
            push @p, 'replication.primary is ' . ($x->{primary} // 'null')
                     . ", expected $url"
                unless $xt{primary} eq 'string' && $x->{primary} eq $url;
            push @p, "replication.connected is $xt{connected}, expected true"
                unless $xt{connected} eq 'bool' && $x->{connected};
            for my $k (qw(applied_seq primary_seq lag_ms)) {
                push @p, "replication.$k is $xt{$k} " . ($x->{$k} // 'null')
                         . ', expected an integer >= 0'
                    unless $xt{$k} eq 'number' && $x->{$k} =~ /\A\d+\z/;
            }
            if (!@p) {
                push @p, "applied_seq $x->{applied_seq} > primary_seq "
                         . $x->{primary_seq}
                    if $x->{applied_seq} > $x->{primary_seq};
                push @p, "applied_seq $x->{applied_seq}, primary_seq "
                         . "$x->{primary_seq}, expected both $seq"
                    if defined $seq && ($x->{applied_seq} != $seq
                                        || $x->{primary_seq} != $seq);
            }
        }
    }
    ok(!@p, "health of $label: role $role, store_id, epoch 1"
            . ($role eq 'primary' ? '' : ', replication object'))
        or diag join("\n", map { "  - $_" } @p) . "\n" . InvTest::show($r);
    return ref $j eq 'HASH' ? $j : {};
}

my $hp = health_ok($P, 'primary', undef, 'P');
my $ha = health_ok($A, 'follower', $PURL, 'A', $N0);
my $hb = health_ok($B, 'follower', $AURL, 'B', $N0);
ok(defined $hp->{store_id} && ($ha->{store_id} // '') eq $hp->{store_id}
   && ($hb->{store_id} // '') eq $hp->{store_id},
   'the three nodes have the same store_id')
    or diag "P $hp->{store_id}, A $ha->{store_id}, B $hb->{store_id}";

# --- the load: random writes on P, each read back on a follower ----------

# the answer's Inventory-Seq: an integer, else undef
sub seq_of {
    my $s = header($_[0], 'inventory-seq');
    return defined $s && $s =~ /\A\d+\z/ ? $s : undef;
}

# read_back($F, $w, $seq): problems with reading write $w back on follower
# $F with Inventory-Min-Seq: $seq
sub read_back {
    my ($F, $name, $w, $seq) = @_;
    my $r = $w->{r};
    my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
    my %h = ('Inventory-Min-Seq' => $seq);
    my @p;
    my $get = sub {
        my ($path, @ok) = @_;
        my $g = $F->req(GET => $path, headers => \%h);
        my $gs = seq_of($g);
        push @p, "$name GET $path with Inventory-Min-Seq $seq after "
                 . "$w->{kind} $r->{status}: " . InvTest::show($g)
            unless (grep { $_ == $g->{status} } @ok)
                   && defined $gs && $gs >= $seq;
        return $g->{status} == 200 && ref $g->{json} eq 'HASH'
               ? $g->{json} : undef;
    };
    my $item_seen = sub {
        my ($it) = @_;
        return unless ref $it eq 'HASH' && defined $it->{version};
        my $g = $get->("/v1/inventory/$it->{sku}/$it->{location}", 200)
            or return;
        if ($g->{version} < $it->{version}) {
            push @p, "$name: $it->{sku}/$it->{location} at version "
                     . "$g->{version}, the write answered $it->{version}";
        } elsif ($g->{version} == $it->{version}) {
            my @d = grep { ($g->{$_} // '') ne ($it->{$_} // '') }
                    sort keys %{ { %$g, %$it } };
            push @p, "$name: $it->{sku}/$it->{location} v$it->{version} "
                     . "differs in @d: " . encode_json($g) if @d;
        }
    };
    my $st = $r->{status};
    if ($w->{kind} =~ /^(?:put|adjust|move)\z/ && $st < 300) {
        $item_seen->($j);
    } elsif ($w->{kind} eq 'transfer' && $st < 300) {
        $item_seen->($j->{from});
        $item_seen->($j->{to});
    } elsif ($w->{kind} =~ /^(?:reserve|cart|commit|release)\z/
             && $st < 300)
    {
        my $g = $get->("/v1/reservations/$j->{id}", 200) or return @p;
        for my $k (qw(state expires_at ended_at reference)) {
            push @p, "$name: reservation $j->{id} $k is "
                     . ($g->{$k} // 'null') . ', the write answered '
                     . ($j->{$k} // 'null')
                unless ($g->{$k} // '') eq ($j->{$k} // '');
        }
        push @p, "$name: reservation $j->{id} lines "
                 . encode_json($g->{lines} // []) . ', the write answered '
                 . encode_json($j->{lines} // [])
            unless encode_json($g->{lines} // [])
                   eq encode_json($j->{lines} // []);
    } elsif ($w->{id}) {
        $get->("/v1/reservations/$w->{id}", 200);
    } else {
        $get->("/v1/inventory/$w->{paths}[0]", 200, 404);
    }
    return @p;
}

# ledger_steps($k): the ledger client's script for its cycle $k, on the
# items L-$k/w1 and L-$k/w2: [kind, status, method, path, body, the item's
# fields the answer must show, a name to keep the reservation's id by];
# {name} in a path is the id kept by that name.
sub ledger_steps {
    my ($k) = @_;
    my $S = "L-$k";
    my ($I1, $I2) = ("/v1/inventory/$S/w1", "/v1/inventory/$S/w2");
    my $adj = sub { [ adjust => 200, POST => "$I1/adjustments",
                      { delta => $_[0], (defined $_[1] ? (state => $_[1])
                                                       : ()),
                        reason => 'adjust ' . ($_[1] // 'none'),
                        reference => "adj:$S" } ] };
    my $move = sub { [ move => $_[3] // 200, POST => "$_[4]/moves",
                       { from => $_[0], to => $_[1], quantity => $_[2],
                         reason => "move $_[0] $_[1]",
                         reference => "mv:$S" }, $_[5] ] };
    return (
        [ put => 201, PUT => $I1, { on_hand => 2, safety_stock => 1,
                                    backorder_limit => 6, min_level => 1,
                                    reason => 'count',
                                    reference => "count:$S" },
          { available => 1, safety_stock => 1, backorder_limit => 6 } ],
        [ put => 201, PUT => $I2, { on_hand => 0, backorder_limit => 3,
                                    reference => "count:$S" } ],
        $adj->(10, 'incoming'), $adj->(2, 'damaged'),
        $adj->(2, 'quality_control'), $adj->(3), $adj->(-1, 'damaged'),
        $adj->(-1, 'quality_control'), $adj->(-1, 'incoming'),
        $adj->(-1, 'available'),
        # on_hand 6, damaged 1, quality_control 1, incoming 9, available 3
        (map { $move->(@$_, 1, undef, $I1) }
             [ 'available', 'damaged' ], [ 'available', 'quality_control' ],
             [ 'damaged', 'quality_control' ], [ 'quality_control', 'damaged' ],
             [ 'damaged', 'available' ], [ 'quality_control', 'available' ],
             [ 'incoming', 'available' ], [ 'incoming', 'damaged' ]),
        $move->('incoming', 'quality_control', 1, 200, $I1,
                { on_hand => 9, damaged => 2, quality_control => 2,
                  incoming => 6, available => 4 }),
        $move->('available', 'damaged', 5, 409, $I1),
        # a backordered hold: 10 with 5 sellable and a limit of 6
        [ reserve => 201, POST => "$I1/reservations",
          { quantity => 10, reference => "order:$S", reason => 'web' },
          undef, 'hold' ],
        [ reserve => 409, POST => "$I1/reservations", { quantity => 1 } ],
        [ commit => 409, POST => '/v1/reservations/{hold}/commit' ],
        $move->('incoming', 'available', 5, 200, $I1,
                { incoming => 1, on_hand => 14, reserved => 10,
                  available => -1 }),
        [ commit => 200, POST => '/v1/reservations/{hold}/commit',
          { reason => 'shipped' } ],
        # a backordered cart over both items
        [ cart => 201, POST => '/v1/reservations',
          { lines => [ { sku => $S, location => 'w1', quantity => 2 },
                       { sku => $S, location => 'w2', quantity => 3 } ],
            reference => "cart:$S" }, undef, 'cart' ],
        [ commit => 409, POST => '/v1/reservations/{cart}/commit' ],
        $move->('damaged', 'available', 2, 200, $I1,
                { damaged => 0, reserved => 2, available => -1 }),
        [ commit => 409, POST => '/v1/reservations/{cart}/commit' ],
        [ adjust => 200, POST => "$I2/adjustments",
          { delta => 3, reference => "po2:$S" },
          { on_hand => 3, reserved => 3, available => 0 } ],
        [ commit => 200, POST => '/v1/reservations/{cart}/commit',
          { reference => "ship:$S" } ],
        [ adjust => 200, POST => "$I1/adjustments", { delta => 5 },
          { on_hand => 7, available => 4 } ],
        [ transfer => 200, POST => '/v1/transfers',
          { sku => $S, from => 'w1', to => 'w2', quantity => 2,
            reason => 'rebalance', reference => "to:$S" } ],
        [ reserve => 201, POST => "$I2/reservations",
          { quantity => 1, reference => "hold:$S" }, undef, 'r2' ],
        [ release => 200, POST => '/v1/reservations/{r2}/release',
          { reason => 'cancelled', reference => "cancel:$S" } ],
        [ put => 200, PUT => $I1, { on_hand => 6, safety_stock => 0,
                                    backorder_limit => 0,
                                    reference => "count2:$S" },
          { on_hand => 6, safety_stock => 0, backorder_limit => 0 } ],
        # left active, backordered: 4 with 2 on hand
        [ reserve => 201, POST => "$I2/reservations", { quantity => 4 },
          undef, 'left' ],
    );
}

my $t_end = time + $SECONDS;
my @out = parallel($CLIENTS + 2, sub {
    my ($ci) = @_;
    if ($ci == $CLIENTS + 1) {
        # the ledger client
        my (@bad, %count, @acks, @items, @refs, @left);
        my $k = 0;
        my $n = 0;
        CYCLE: while (time < $t_end) {
            $k++;
            my %id;
            for my $s (ledger_steps($k)) {
                my ($kind, $want, $m, $path, $body, $exp, $keep) = @$s;
                $path =~ s/\{(\w+)\}/$id{$1} \/\/ 'r_none'/ge;
                my $r = $P->req($m => $path, headers => { 'X-Actor' =>
                                                          "ledger-$k" },
                                (defined $body ? (json => $body) : ()));
                $count{"ledger $kind $r->{status}"}++;
                my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
                my @p;
                push @p, "status $r->{status}, expected $want"
                    unless $r->{status} == $want;
                if ($exp && $r->{status} == $want) {
                    push @p, "$_ is " . ($j->{$_} // 'none')
                             . ", expected $exp->{$_}"
                        for grep { ($j->{$_} // 'none') ne $exp->{$_} }
                            sort keys %$exp;
                }
                my $seq = seq_of($r);
                push @p, 'no Inventory-Seq' unless defined $seq;
                if (@p) {
                    push @bad, "ledger cycle $k $kind $m $path "
                               . encode_json($body // {}) . ': '
                               . join('; ', @p) . "\n" . InvTest::show($r);
                    last CYCLE;
                }
                $id{$keep} = $j->{id} if $keep;
                my ($res) = $path =~ m{/reservations/(r_\w+)/};
                my @it = $kind =~ /^(?:put|adjust|move)\z/ ? ($j)
                       : $kind eq 'transfer' ? ($j->{from}, $j->{to})
                       : ();
                if ($r->{status} < 300) {
                    my $ev = header($r, 'x-event-seq');
                    push @bad, "ledger: Inventory-Seq $seq below the "
                               . 'event seq ' . ($ev // 'none')
                        unless defined $ev && $ev =~ /^\d+\z/ && $seq >= $ev;
                    push @acks, { kind => $kind, seq => $seq, ev => $ev,
                                  id => $j->{id},
                                  items => { map { ("$_->{sku}/$_->{location}"
                                                    => $_->{version}) }
                                             grep { ref eq 'HASH' } @it },
                                  lines => [ map { "$_->{sku}/$_->{location}" }
                                             @{ ref $j->{lines} eq 'ARRAY'
                                                ? $j->{lines} : [] } ] };
                }
                push @refs, $body->{reference}
                    if ref $body eq 'HASH' && defined $body->{reference};
                my ($name, $F) = $n++ % 2 ? ('B', $B) : ('A', $A);
                push @bad, read_back($F, $name, {
                    kind => $kind, r => $r, id => $res // $j->{id},
                    paths => [ $path =~ m{^/v1/inventory/([^/]+/[^/]+)}
                               ? $1 : () ] }, $seq);
                last CYCLE if @bad;
            }
            push @items, "L-$k/w1", "L-$k/w2";
            push @left, $id{left};
        }
        return encode_json({ ledger => 1, cycles => scalar(@items) / 2,
                             bad => \@bad, count => \%count, acks => \@acks,
                             items => \@items, refs => \@refs,
                             left => \@left });
    }
    if ($ci == $CLIENTS) {
        # the poller: B, then A, then P
        my (@bad, %last, $polls);
        my @nodes = (['B', $B], ['A', $A], ['P', $P]);
        while (time < $t_end + 0.5) {
            my %now;
            for my $x (@nodes) {
                my ($name, $n) = @$x;
                my $it = $ITEMS[rand @ITEMS];
                for my $path ('/v1/events?after=9007199254740991',
                              "/v1/inventory/$it")
                {
                    my $r = $n->req(GET => $path);
                    my $s = seq_of($r);
                    if (!defined $s || ($r->{status} != 200
                                        && $r->{status} != 404)) {
                        push @bad, "$name: " . InvTest::show($r);
                        next;
                    }
                    push @bad, "$name: Inventory-Seq $s after $last{$name}"
                        if defined $last{$name} && $s < $last{$name};
                    $last{$name} = $s;
                    $now{$name} = $s;
                    if ($path =~ /events/) {
                        my $ls = ref $r->{json} eq 'HASH'
                                 ? $r->{json}{last_seq} : undef;
                        push @bad, "$name: empty feed page last_seq "
                                   . ($ls // 'null') . ", Inventory-Seq $s"
                            unless defined $ls && $ls == $s;
                    }
                }
            }
            push @bad, "B at $now{B} is ahead of A at $now{A}, read after"
                if defined $now{B} && defined $now{A} && $now{B} > $now{A};
            push @bad, "A at $now{A} is ahead of P at $now{P}, read after"
                if defined $now{A} && defined $now{P} && $now{A} > $now{P};
            $polls++;
            last if @bad > 20;
        }
        return encode_json({ poller => 1, polls => $polls, bad => \@bad,
                             last => \%last });
    }
    srand($SEED + 7919 * ($ci + 1));
    my %st = (items => \@ITEMS, tag => "r$SEED-$ci", states => 1);
    my (@bad, %count, @acks);
    my $k = 0;
    while (time < $t_end) {
        my $w = random_write($P, \%st);
        my $r = $w->{r};
        $count{"$w->{kind} $r->{status}"}++;
        if (!$w->{ok}) {
            push @bad, "$w->{kind}: " . InvTest::show($r);
            last if @bad > 20;
            next;
        }
        my $seq = seq_of($r);
        if (!defined $seq) {
            push @bad, "no Inventory-Seq: " . InvTest::show($r);
            next;
        }
        my $ev = header($r, 'x-event-seq');
        my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
        if ($r->{status} < 300) {
            push @bad, "Inventory-Seq $seq below the write's event seq "
                       . ($ev // 'none') . ': ' . InvTest::show($r)
                unless defined $ev && $ev =~ /^\d+\z/ && $seq >= $ev;
            # the items the write answered, with their versions
            my @it = $w->{kind} =~ /^(?:put|adjust|move)\z/ ? ($j)
                   : $w->{kind} eq 'transfer' ? ($j->{from}, $j->{to})
                   : ();
            my @lines = map { "$_->{sku}/$_->{location}" }
                        @{ ref $j->{lines} eq 'ARRAY' ? $j->{lines} : [] };
            push @acks, { kind => $w->{kind}, seq => $seq, ev => $ev,
                          id => $j->{id},
                          items => { map { ("$_->{sku}/$_->{location}"
                                            => $_->{version}) }
                                     grep { ref eq 'HASH' } @it },
                          lines => \@lines };
        }
        my ($name, $F) = $k++ % 2 ? ('B', $B) : ('A', $A);
        push @bad, read_back($F, $name, $w, $seq);
        last if @bad > 20;
    }
    return encode_json({ bad => \@bad, count => \%count, acks => \@acks,
                         active => $st{active} });
});

my (@bad, %count, @acks, @active, $poll, $ledger);
for my $o (@out) {
    my $j = eval { decode_json($o) };
    if (ref $j ne 'HASH') { push @bad, "a client: $o"; next }
    push @bad, @{ $j->{bad} };
    if ($j->{poller}) { $poll = $j; next }
    $ledger = $j if $j->{ledger};
    $count{$_} += $j->{count}{$_} for keys %{ $j->{count} };
    push @acks, @{ $j->{acks} };
    push @active, @{ $j->{active} // [] };
}
my $NW = 0;
$NW += $_ for values %count;
diag sprintf "%d writes in %d s: %s; %d polls of B, A, P", $NW, $SECONDS,
    join(', ', map { "$_ x$count{$_}" } sort keys %count),
    $poll ? $poll->{polls} // 0 : 0;
ok(!@bad, 'every write answered as its kind may, with Inventory-Seq >= its '
   . 'own event; each read back on a follower with Inventory-Min-Seq saw '
   . 'it; the poller saw Inventory-Seq never go back and B <= A <= P')
    or diag join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)];
ok(@acks > 20, scalar(@acks) . ' writes acknowledged');
ok($poll && $poll->{polls} > 5, 'the poller polled')
    or diag encode_json($poll // {});
ok($ledger && $ledger->{cycles} >= 1, 'the ledger client ran its script '
   . ($ledger ? $ledger->{cycles} : 0) . ' times, each answer as scripted')
    or diag encode_json($ledger // {});
my %kinds = map { (/^(\w+) \d+$/ ? ($1 => 1) : ()) } keys %count;
SKIP: {
    skip "only $NW writes", 1 if $NW < 200;
    is(join(' ', sort keys %kinds),
       'adjust cart commit move put release reserve transfer',
       'the random clients wrote every kind');
}

# every acknowledged write's own event (X-Event-Seq) is in P's log: its item
# at the version answered; Inventory-Seq never beyond the log
my $N = last_seq($P);
my ($feed, $fp) = feed_pages($P, 0, 1000);
ok(!@$fp, "P's feed is 1..$N") or diag join "\n", @$fp;
my %by_seq = map { ($_->{seq} => $_) } @$feed;
my (@miss, %seen);
for my $x (@acks) {
    my $e = $by_seq{ $x->{ev} // -1 };
    my $k = $e ? "$e->{sku}/$e->{location}" : '';
    my $why;
    if (!$e) { $why = 'no such event' }
    elsif (%{ $x->{items} }) {
        $why = "event is $k v$e->{version}"
            unless defined $x->{items}{$k}
                   && $x->{items}{$k} == $e->{version};
    } elsif (@{ $x->{lines} }) {
        $why = "event is of $k" unless grep { $_ eq $k } @{ $x->{lines} };
    }
    $why //= "Inventory-Seq $x->{seq} beyond the last seq $N"
        if $x->{seq} > $N;
    $why //= 'event seq answered twice' if $seen{ $x->{ev} }++;
    push @miss, "$x->{kind} ev $x->{ev} seq $x->{seq}: $why" if $why;
}
ok(!@miss, 'each acknowledged write names (X-Event-Seq) its own event in '
   . "P's log, and its Inventory-Seq is within the log")
    or diag join "\n", @miss[0 .. ($#miss > 15 ? 15 : $#miss)];

# --- convergence ------------------------------------------------------------
my $t = time;
ok(wait_applied($A, $N, 30), "A reaches P's last seq $N");
ok(wait_applied($B, $N, 30), "B reaches $N");
diag sprintf 'both followers at %d %.2f s after the load', $N, time - $t;
is(last_seq($P), $N, 'P wrote nothing more meanwhile');
same_store_ok([ $P->datadir, $A->datadir, $B->datadir ],
              'P, A and B after the load');

$hp = health_ok($P, 'primary', undef, 'P after the load');
$ha = health_ok($A, 'follower', $PURL, 'A after the load', $N);
$hb = health_ok($B, 'follower', $AURL, 'B after the load', $N);
is_deeply([ map { $_->{store_id} // '' } $ha, $hb ],
          [ ($hp->{store_id} // '?') x 2 ], 'store_id still the same');

# every GET route answers the same bytes on P, A and B
my %rid = map { ($_->{id} => 1) } grep { $_->{id} } @acks;
my @RIDS = sort keys %rid;
splice @RIDS, 20 if @RIDS > 20;
my @LITEMS = @{ $ledger->{items} // [] };
splice @LITEMS, 0, @LITEMS - 6 if @LITEMS > 6;
my %lref = map { ($_ => 1) } @{ $ledger->{refs} // [] };
my @LREFS = (sort keys %lref)[0 .. 9];
my @paths = ('/v1/events?after=0&limit=1000', '/v1/events?after=5&limit=7',
             '/v1/low-stock?limit=1000', map({ "/v1/inventory/$_" } @ITEMS),
             map({ "/v1/inventory/$_/events?after_version=0&limit=1000" }
                 @ITEMS),
             map({ "/v1/inventory/R-$_" } 1 .. 3),
             map({ "/v1/reservations/$_" } @RIDS),
             map({ ("/v1/inventory/$_",
                    "/v1/inventory/$_/events?after_version=0&limit=1000") }
                 @LITEMS),
             map({ "/v1/reservations/$_" } grep { defined }
                 @{ $ledger->{left} // [] }),
             map({ "/v1/events?reference=$_&limit=1000" } grep { defined }
                 @LREFS),
             '/v1/inventory?changed_after=0&limit=1000',
             '/v1/inventory?changed_after=' . int($N / 2) . '&limit=50');
my @diff;
for my $path (@paths) {
    my $rp = $P->req(GET => $path);
    for my $x (['A', $A], ['B', $B]) {
        my $r = $x->[1]->req(GET => $path);
        push @diff, "$x->[0] $path: $r->{status} " . substr($r->{body}, 0, 200)
                    . "\n  P: $rp->{status} " . substr($rp->{body}, 0, 200)
            unless $r->{status} == $rp->{status} && $r->{body} eq $rp->{body}
                   && (header($r, 'etag') // '') eq (header($rp, 'etag')
                                                     // '')
                   && (seq_of($r) // -1) == $N;
    }
}
ok(!@diff, scalar(@paths) . ' GETs (feed, low-stock, items, SKUs, item '
   . 'events, reservations, the ledger\'s items and events, events by '
   . 'reference, items changed after a seq) answer the same status, ETag '
   . "and bytes on P, A and B, with Inventory-Seq $N")
    or diag join "\n", @diff[0 .. ($#diff > 10 ? 10 : $#diff)];

# inventory-admin info
for my $x (['P', $P, 'primary'], ['A', $A, 'follower'], ['B', $B, 'follower']) {
    my ($name, $n, $role) = @$x;
    my ($rc, $out, $err) = admin_run('info', $n->datadir);
    my $j = eval { decode_json($out) };
    my @p;
    push @p, "exit $rc, stderr '$err'" unless $rc == 0 && $err eq '';
    push @p, 'not one JSON object on one line'
        unless ref $j eq 'HASH' && $out =~ /\A\{[^\n]*\}\n\z/;
    if (ref $j eq 'HASH') {
        my %t = map { $_ => json_type($j->{$_}) }
                qw(role store_id epoch last_seq);
        push @p, "role '" . ($j->{role} // 'null') . "'"
            unless $t{role} eq 'string'
                   && $j->{role} eq $role;
        push @p, "store_id '" . ($j->{store_id} // 'null') . "', health "
                 . "says $hp->{store_id}"
            unless $t{store_id} eq 'string'
                   && $j->{store_id} eq ($hp->{store_id} // '');
        push @p, "epoch $t{epoch} " . ($j->{epoch} // 'null')
            unless $t{epoch} eq 'number' && $j->{epoch} == 1;
        push @p, "last_seq $t{last_seq} " . ($j->{last_seq} // 'null')
            unless $t{last_seq} eq 'number' && $j->{last_seq} == $N;
    }
    ok(!@p, "inventory-admin info of $name: role $role, the store_id, "
            . "epoch 1, last_seq $N") or diag join("\n", @p) . "\n$out";
    diag "info $name: $out" if $name ne 'P';
}

# the replication metrics of a follower
for my $x (['A', $A], ['B', $B]) {
    my ($name, $n) = @$x;
    my $m = metrics($n) // {};
    my @names = map { "inventory_replication_$_" }
        qw(connected applied_seq primary_seq lag_seconds lag_events
           transactions_applied_total bytes_applied_total reconnects_total
           snapshots_total apply_lag_seconds_count);
    my @absent = grep { !exists $m->{$_} } @names;
    ok(!@absent, "$name: /metrics has the replication metrics")
        or diag "absent: @absent";
    my $v = sub { $m->{"inventory_replication_$_[0]"} // -1 };
    ok($v->('connected') == 1 && $v->('applied_seq') == $N
       && $v->('primary_seq') == $N
       && $v->('lag_seconds') == 0 && $v->('lag_events') == 0
       && $v->('apply_lag_seconds_count') > 0
       && $v->('transactions_applied_total') > 0
       && $v->('bytes_applied_total') > 0
       && $v->('reconnects_total') >= 0 && $v->('snapshots_total') >= 1,
       "$name: connected 1, applied_seq and primary_seq $N, no lag, "
       . 'transactions and bytes applied > 0, at least one snapshot')
        or diag join "\n", map { "$_ " . ($m->{$_} // 'absent') } @names;
}

# --- writes to a follower ---------------------------------------------------
my ($rsv) = grep { defined } @active;
$rsv //= (sort keys %rid)[0] // 'r_0000000000000000000000';
my @WRITES = (
    [PUT => '/v1/inventory/R-1/w1', { on_hand => 5 }],
    [PUT => '/v1/inventory/NEW-1/w1', { on_hand => 5 }],
    [POST => '/v1/inventory/R-1/w1/adjustments', { delta => 1 }],
    [POST => '/v1/inventory/R-1/w1/reservations', { quantity => 1 }],
    [POST => '/v1/reservations', { lines => [
        { sku => 'R-1', location => 'w1', quantity => 1 },
        { sku => 'R-2', location => 'w2', quantity => 1 } ] }],
    [POST => "/v1/reservations/$rsv/commit", undef],
    [POST => "/v1/reservations/$rsv/release", {}],
    [POST => '/v1/transfers', { sku => 'R-1', from => 'w1', to => 'w2',
                                quantity => 1 }],
    [POST => '/v1/inventory/R-1/w1/moves', { from => 'incoming',
                                             to => 'available',
                                             quantity => 1 }],
    [POST => '/v1/inventory/R-1/w1/adjustments', { delta => 1,
                                                   state => 'damaged',
                                                   reference => 'po:1' }],
    [PUT => '/v1/inventory/R-1/w1', { on_hand => 5, safety_stock => 1,
                                      backorder_limit => 2 }],
    [POST => "/v1/reservations/$rsv/commit", { reason => 'r',
                                               reference => 'ship:1' }],
);
my $snap = items_snapshot($A, map { "/v1/inventory/$_" } @ITEMS);
for my $x (['A', $A, $PURL], ['B', $B, $AURL]) {
    my ($name, $n, $url) = @$x;
    my $k = 0;
    for my $w (@WRITES) {
        my ($m, $path, $body) = @$w;
        for my $h ({}, { 'Idempotency-Key' => "nf-$name-" . ++$k },
                   { 'If-Match' => '"1"' })
        {
            my $r = $n->req($m, $path, headers => $h,
                            (defined $body ? (json => $body) : ()));
            my $hs = join ',', sort keys %$h;
            my $label = "$name: $m $path" . ($hs ? " ($hs)" : '');
            problem_ok($r, 503, 'not-primary', "$label: 503 not-primary");
            my $j = ref $r->{json} eq 'HASH' ? $r->{json} : {};
            my $ra = header($r, 'retry-after');
            ok(($j->{type} // '') eq 'urn:inventory:problem:not-primary'
               && ($j->{primary} // '') eq $url
               && defined $ra && $ra =~ /\A\d+\z/,
               "$label: type urn:inventory:problem:not-primary, primary "
               . "$url, Retry-After") or diag InvTest::show($r);
        }
    }
}
is_deeply([ map { last_seq($_) } $P, $A, $B ], [ $N, $N, $N ],
          'the refused writes changed no log');
unchanged($A, $snap, 'the items on A are unchanged');

# --- Inventory-Min-Seq --------------------------------------------------------
$t = time;
my $r = $P->req(GET => '/v1/inventory/R-1/w1',
                headers => { 'Inventory-Min-Seq' => $N });
ok($r->{status} == 200 && (seq_of($r) // -1) >= $N && time - $t < 1,
   'Inventory-Min-Seq at the last seq on P: 200 at once')
    or diag InvTest::show($r);
$t = time;
$r = $A->req(GET => '/v1/inventory/R-1/w1',
             headers => { 'Inventory-Min-Seq' => $N + 1000 });
my $el = time - $t;
problem_ok($r, 503, 'replica-behind',
           'Inventory-Min-Seq beyond the primary on A: 503 replica-behind');
ok(($r->{json}{type} // '') eq 'urn:inventory:problem:replica-behind'
   && (header($r, 'retry-after') // '') =~ /\A\d+\z/,
   '... type urn:inventory:problem:replica-behind, with Retry-After')
    or diag InvTest::show($r);
ok($el > $WAIT - 0.5 && $el < $WAIT + 5,
   sprintf('... after the follow wait of %d s (%.2f s)', $WAIT, $el));

# a read on B waiting for the next seq, woken by the write on P
my $h = $B->async_req(GET => '/v1/inventory/R-2/w2',
                      headers => [ 'Inventory-Min-Seq' => $N + 1 ]);
sleep 0.5;
my $wr = $P->adjust('R-2', 'w2', { delta => 7 });
my $wt = time;
async_wait([$h], $WAIT + 5);
$r = $h->{res} // { status => 0, headers => {}, body => 'no answer' };
ok($r->{status} == 200 && (seq_of($r) // -1) >= $N + 1
   && ref $r->{json} eq 'HASH' && ref $wr->{json} eq 'HASH'
   && $r->{json}{version} == $wr->{json}{version}
   && $h->{done} - $wt < $WAIT - 1,
   'a read on B with Inventory-Min-Seq of the next seq waits, and is '
   . 'answered with the write once B has it ('
   . sprintf('%.3f s after the write', ($h->{done} // 0) - $wt) . ')')
    or diag InvTest::show($r) . "\n" . InvTest::show($wr);
$N = last_seq($P);
wait_applied($B, $N, 10);

my $v = $B->req(GET => '/v1/inventory/R-2/w2')->{json}{version} // 0;
$r = $B->req(GET => '/v1/inventory/R-2/w2',
             headers => { 'If-None-Match' => qq{"$v"} });
ok($r->{status} == 304 && (seq_of($r) // -1) == $N,
   "a 304 on B carries Inventory-Seq $N") or diag InvTest::show($r);
$r = $B->req(GET => '/v1/inventory/NOPE/w1');
ok($r->{status} == 404 && (seq_of($r) // -1) == $N,
   "a 404 on B carries Inventory-Seq $N") or diag InvTest::show($r);

# --- a follower's feed long poll, woken by a write on the primary --------
for my $x (['A', $A], ['B', $B]) {
    my ($name, $n) = @$x;
    my (@lat, @p);
    for my $try (1 .. $WAKE_TRIES) {
        my $L = last_seq($P);
        wait_applied($n, $L, 10);
        my $lp = $n->async_req(GET => "/v1/events?after=$L&wait=5");
        sleep 0.3;
        my $w = $P->adjust('R-1', 'w2', { delta => 1 });
        my $t1 = time;
        async_wait([$lp], 10);
        my $res = $lp->{res};
        my $lat = defined $lp->{done} ? $lp->{done} - $t1 : 99;
        $lat = 0 if $lat < 0;
        push @lat, $lat;
        my $ev = $res && ref $res->{json} eq 'HASH'
                 ? $res->{json}{events} : undef;
        push @p, "try $try: " . ($res ? InvTest::show($res) : 'no answer')
            unless $w->{status} == 200 && $res && $res->{status} == 200
                   && ref $ev eq 'ARRAY' && @$ev && $ev->[0]{seq} == $L + 1;
        push @p, sprintf('try %d: answered %.3f s after the write', $try,
                         $lat) if $lat > $WAKE;
    }
    my @s = sort { $a <=> $b } @lat;
    my $med = $s[$#s / 2];
    diag sprintf "%s: feed long poll answered %s s after the write on P",
        $name, join(' ', map { sprintf '%.3f', $_ } @lat);
    ok(!@p, "$name: each of $WAKE_TRIES long polls (wait=5) of the feed is "
       . "answered with the write's event within $WAKE s of the write")
        or diag join "\n", @p;
    ok($med <= 0.1, sprintf('%s: the median is within 0.1 s (%.3f s)',
                            $name, $med));
}

$N = last_seq($P);
ok(wait_applied($A, $N, 30) && wait_applied($B, $N, 30),
   "both followers at $N");
same_store_ok([ $P->datadir, $A->datadir, $B->datadir ], 'at the end');
$B->stop;
$A->stop;
$P->stop;
diag sprintf 't/90: %.1f s', time - $T0;
done_testing;
