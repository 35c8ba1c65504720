# Crash safety (issue 7): nginx killed with SIGKILL while clients write.
#
# (a) Every nginx process at once.  $CLIENTS forked clients write as fast
#     as they can through 2 workers, each request on a new connection:
#     counts (PUT), adjustments, reservations of one item and carts of
#     two, commits and releases, transfers, and reservations of 1 s left to
#     expire; every write with a unique Idempotency-Key, which is also its
#     reason or reference, so that each write's events can be told apart.
#     0.2 .. 1.5 s after every client has had an answer, the master is
#     stopped and it and all its workers get SIGKILL.  Then:
#       * `inventory-admin verify` passes on the store as the crash left it;
#       * nginx starts again on the same prefix and data directory;
#       * every request that got no complete answer is sent again with its
#         key: it answers as it must, replayed (its first answer) if it had
#         been applied, applied now if not, never twice;
#       * a sample of the acknowledged writes, sent again, get their first
#         answer byte for byte (Idempotent-Replayed: true);
#       * the global log is gap-free (seq 1 .. last_seq, walked with
#         cursors); each item is the replay of its events, with 0 <=
#         reserved <= on_hand at every version and available = on_hand -
#         reserved;
#       * every acknowledged write is in the log, at the item version it
#         answered, with the on_hand and reserved it answered, and those of
#         the last load were already in the store verify saw after the
#         crash (seq <= its event count); reservations made or ended read
#         back with their reference, lines and state;
#       * nothing else is: every event belongs to exactly one acknowledged
#         write, or is the expiry of a 1 s reservation.
#     $CYCLES crashes (fewer under the sanitizers).  After the last one
#     (and in (b) and at the end) the items' history route is read too and
#     must answer the log's events of each item.
# (b) One worker at a time, $KILLS times, under the same load.  The victim
#     is the worker one of whose threads holds LMDB's write lock (the owner
#     of the lock, read from lock.mdb just before the kill; at random if
#     none is seen within 2 s): it dies in the middle of a group-commit
#     transaction or its fsync.  After each kill the master starts a new
#     worker, a write answered by the surviving worker (X-Worker: $pid)
#     succeeds (the robust mutex handed the lock on: the store is not
#     wedged), and verify passes on the live store.  Then the same retries
#     and checks as in (a); at the end, after a graceful stop, verify.
#
# The master logs "worker process N exited on signal 9" at [alert] for
# each worker killed in (b): exactly those lines, with the victims' pids,
# are allowed in the error log; nothing else.
#
# SEED=n repeats the clients' choices (not the moments of the kills).
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use POSIX ();
use List::Util qw(shuffle max);
use Time::HiRes qw(time sleep);
use InvTest qw(encode_json decode_json feed_pages item_events replay_events
               admin_run wait_gone pid_alive sleep_until ts_ms verify_ok);

my $SEED = int($ENV{SEED} // ((time * 1000 % 1e9) ^ $$));
diag "SEED=$SEED";
srand $SEED;

my $SAN = $ENV{INVENTORY_PRELOAD} ? 1 : 0;
my $CYCLES = $SAN ? 8 : 10;      # (a): kills of every process
my $KILLS = $SAN ? 10 : 12;      # (b): kills of one worker
my $CLIENTS = 4;
my $START = 1_000_000;           # on_hand at the start: never short
my @SKUS = qw(K-1 K-2 K-3);
my @LOCS = qw(w1 w2 w3);
my @ITEMS = map { my $s = $_; map { "$s/$_" } @LOCS } @SKUS;

# the status each kind of write must get
my %WANT = (put => 200, adjust => 200, reserve => 201, cart => 201,
            end => 200, transfer => 200);

my $T0 = time;
my $n = InvTest->start(workers => 2,
                       location_extra => 'add_header X-Worker $pid always;');
my $DIR = $n->dir;
my $D = $n->datadir;

my $HT = HTTP::Tiny->new(keep_alive => 0, timeout => 15, max_redirect => 0,
                         agent => 't71');

# What the test knows: every request sent (by key), the acknowledged ones,
# the requests without an answer (until retried), the reservations.
my (%SENT, %ACK, @UNKNOWN, @BAD, %RES);
my %STAT = (acked => 0, retried => 0, replayed => 0, applied_by_retry => 0);

# --- requests -------------------------------------------------------------

sub send_req {
    my ($q) = @_;
    my $t0 = time;
    my $res = $HT->request($q->{method}, $n->url($q->{path}), {
        headers => { 'Content-Type' => 'application/json',
                     'Idempotency-Key' => $q->{key} },
        content => $q->{body},
    });
    return { key => $q->{key}, status => $res->{status},
             body => $res->{content} // '',
             replayed => (($res->{headers}{'idempotent-replayed'} // '')
                          eq 'true') ? 1 : 0,
             worker => $res->{headers}{'x-worker'}, t0 => $t0, t1 => time };
}

sub item_parts { split m{/}, $_[0] }

# a random write; $active: ids of active reservations this client may end
sub new_req {
    my ($key, $active) = @_;
    my $x = rand 100;
    my $item = $ITEMS[rand @ITEMS];
    my ($sku, $loc) = item_parts($item);
    my %q = (key => $key, method => 'POST');
    if ($x < 30) {
        my $d = (1 + int rand 9) * (rand() < 0.3 ? -1 : 1);
        %q = (%q, kind => 'adjust', item => $item, delta => $d,
              path => "/v1/inventory/$item/adjustments",
              body => encode_json({ delta => $d, reason => $key }));
    } elsif ($x < 36) {
        my $oh = $START - 50_000 + int rand 100_000;
        %q = (%q, kind => 'put', item => $item, on_hand => $oh,
              method => 'PUT', path => "/v1/inventory/$item",
              body => encode_json({ on_hand => $oh, reason => $key }));
    } elsif ($x < 52) {
        my $qty = 1 + int rand 3;
        my $short = rand() < 0.2 ? 1 : 0;
        %q = (%q, kind => 'reserve', short => $short,
              lines => [[$item, $qty]],
              path => "/v1/inventory/$item/reservations",
              body => encode_json({ quantity => $qty, reference => $key,
                                    ttl_seconds => $short ? 1 : 600 }));
    } elsif ($x < 58) {
        my $other;
        do { $other = $ITEMS[rand @ITEMS] } while $other eq $item;
        my @lines = ([$item, 1 + int rand 3], [$other, 1 + int rand 3]);
        %q = (%q, kind => 'cart', short => 0, lines => \@lines,
              path => '/v1/reservations',
              body => encode_json({
                  lines => [ map { my ($s, $l) = item_parts($_->[0]);
                                   { sku => $s, location => $l,
                                     quantity => $_->[1] } } @lines ],
                  reference => $key, ttl_seconds => 600 }));
    } elsif ($x < 78 && @$active) {
        my $id = splice @$active, int(rand @$active), 1;
        my $op = rand() < 0.5 ? 'commit' : 'release';
        %q = (%q, kind => 'end', id => $id, op => $op,
              path => "/v1/reservations/$id/$op", body => '{}');
    } else {
        my $from = $LOCS[rand @LOCS];
        my $to;
        do { $to = $LOCS[rand @LOCS] } while $to eq $from;
        my $qty = 1 + int rand 5;
        %q = (%q, kind => 'transfer', from => "$sku/$from", to => "$sku/$to",
              quantity => $qty, path => '/v1/transfers',
              body => encode_json({ sku => $sku, from => $from, to => $to,
                                    quantity => $qty, reason => $key }));
    }
    return \%q;
}

# A client: writes until $stop exists; every request is journalled before
# it is sent (Q) and its answer after (A), so that the parent knows of
# every request even if the client is stopped in the middle.
sub client {
    my ($i, $tag, $active, $file, $stop) = @_;
    srand($SEED + 7919 * ($i + 1) + unpack('%32C*', $tag));
    open my $fh, '>', $file or die "$file: $!";
    $fh->autoflush(1);
    my $k = 0;
    my $deadline = time + 90;
    while (!-e $stop && time < $deadline) {
        my $q = new_req("$tag-$i-" . ++$k, $active);
        print {$fh} 'Q ', encode_json($q), "\n";
        my $a = send_req($q);
        print {$fh} 'A ', encode_json($a), "\n";
        if ($k == 1) { open my $r, '>', "$file.ready"; close $r }
        if ($a->{status} == 599) {
            sleep 0.02;                 # nginx (or this worker) is gone
        } elsif ($a->{status} == 201 && $q->{kind} =~ /^(?:reserve|cart)\z/
                 && !$q->{short})
        {
            my $j = eval { decode_json($a->{body}) };
            push @$active, $j->{id} if ref $j eq 'HASH' && $j->{id};
        }
    }
    close $fh;
}

# --- what the answers mean --------------------------------------------------

sub show_a {
    my ($q, $a) = @_;
    return "$q->{method} $q->{path} $q->{body} (key $q->{key}) -> "
           . ($a ? "$a->{status}: " . substr($a->{body}, 0, 300)
                 : 'no answer');
}

sub sent {
    my ($q) = @_;
    push @BAD, "key $q->{key} sent twice as a new request"
        if $SENT{ $q->{key} };
    $SENT{ $q->{key} } = $q;
}

# an answer: acknowledged (the status the request must get), unknown (no
# complete answer, or a 5xx, which the contract says wrote nothing: retried
# later), or wrong (fails the test)
sub classify {
    my ($q, $a, $via, $cycle) = @_;
    if (!$a || $a->{status} == 599 || $a->{status} >= 500) {
        push @BAD, "$via: " . show_a($q, $a) if $a && $a->{status} != 599;
        push @UNKNOWN, $q;
        return 0;
    }
    # Each key is sent once, but HTTP::Tiny sends a PUT (an idempotent
    # method) again by itself when the connection closes before the
    # answer.  When a worker was killed with the first attempt, the key it
    # held is taken over at once, even while the dead worker is a zombie
    # not yet reaped by the master: a 409 in-flight here fails the test.
    if ($a->{status} != $WANT{ $q->{kind} }) {
        push @BAD, "$via: " . show_a($q, $a);
        return 0;
    }
    my $j = eval { decode_json($a->{body}) };
    if (ref $j ne 'HASH') {
        push @BAD, "$via: not a JSON object: " . show_a($q, $a);
        return 0;
    }
    push @BAD, "$via: answered twice: " . show_a($q, $a) if $ACK{ $q->{key} };
    $ACK{ $q->{key} } = { q => $q, a => $a, j => $j, via => $via,
                          cycle => $cycle };
    $STAT{acked}++;
    my @p;
    my $k = $q->{kind};
    if ($k eq 'adjust' || $k eq 'put') {
        my ($s, $l) = item_parts($q->{item});
        @p = InvTest::item_problems($j, { sku => $s, location => $l });
    } elsif ($k eq 'transfer') {
        my ($s, $fl) = item_parts($q->{from});
        my (undef, $tl) = item_parts($q->{to});
        @p = (InvTest::item_problems($j->{from},
                                     { sku => $s, location => $fl }),
              InvTest::item_problems($j->{to},
                                     { sku => $s, location => $tl }));
    } elsif ($k eq 'reserve' || $k eq 'cart') {
        @p = InvTest::reservation_problems($j, {
            state => 'active', reference => $q->{key},
            lines => [ map { [ item_parts($_->[0]), $_->[1] ] }
                       @{ $q->{lines} } ] });
        $RES{ $j->{id} } = { key => $q->{key}, lines => $q->{lines},
                             short => $q->{short}, state => 'active',
                             expires_at => $j->{expires_at}, dirty => 1 }
            if defined $j->{id};
    } elsif ($k eq 'end') {
        my $want = $q->{op} eq 'commit' ? 'committed' : 'released';
        @p = InvTest::reservation_problems($j, { id => $q->{id},
                                                 state => $want });
        my $r = $RES{ $q->{id} };
        if (!$r) {
            push @p, "ended a reservation the test does not know";
        } else {
            push @p, "reservation $q->{id} was already $r->{state}"
                unless $r->{state} eq 'active';
            $r->{state} = $want;
            $r->{dirty} = 1;
        }
    }
    push @BAD, map { "$via: $_: " . show_a($q, $a) } @p;
    return 1;
}

# read the clients' journals
sub ingest {
    my ($tag, $nclients, $cycle) = @_;
    my ($acked, $unknown) = (0, 0);
    for my $i (0 .. $nclients - 1) {
        my $f = "$DIR/journal-$tag-$i";
        open my $fh, '<', $f or do { push @BAD, "$f: $!"; next };
        my (@q, %a);
        while (my $l = <$fh>) {
            chomp $l;
            my ($t, $js) = $l =~ /^([QA]) (.*)\z/ or next;
            my $x = eval { decode_json($js) };
            if (!$x) { push @BAD, "$f: unreadable line: $l"; next }
            if ($t eq 'Q') { push @q, $x } else { $a{ $x->{key} } = $x }
        }
        close $fh;
        for my $q (@q) {
            sent($q);
            classify($q, $a{ $q->{key} }, 'load', $cycle) ? $acked++
                                                         : $unknown++;
        }
    }
    return ($acked, $unknown);
}

# --- load -------------------------------------------------------------------

# runs $CLIENTS clients while $controller runs in this process; then stops
# them and reads their journals.  The clients share the active (not short)
# reservations between them to end.
sub run_load {
    my ($tag, $cycle, $controller) = @_;
    my $stop = "$DIR/stop-$tag";
    my @act = shuffle sort grep { !$RES{$_}{short}
                                  && $RES{$_}{state} eq 'active' } keys %RES;
    STDOUT->flush;
    STDERR->flush;
    my @pids;
    for my $i (0 .. $CLIENTS - 1) {
        my @mine = @act[ grep { $_ % $CLIENTS == $i } 0 .. $#act ];
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            eval { client($i, $tag, \@mine, "$DIR/journal-$tag-$i", $stop) };
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    my $ctl = eval { $controller->() };
    my $err = $@;
    open my $fh, '>', $stop;
    close $fh;
    my $deadline = time + 30;
    my %left = map { $_ => 1 } @pids;
    while (%left && time < $deadline) {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, POSIX::WNOHANG()) != 0;
        }
        sleep 0.02 if %left;
    }
    for my $p (keys %left) {          # a client stuck: ours, by its pid
        push @BAD, "client $p did not stop within 30 s";
        kill 'KILL', $p;
        waitpid $p, 0;
    }
    die $err if $err;
    my ($acked, $unknown) = ingest($tag, $CLIENTS, $cycle);
    return ($ctl, $acked, $unknown);
}

# every request that got no answer, sent again with its key until it gets
# one (a worker being restarted, a key still held by a dead worker)
sub resolve_unknown {
    my ($label, $cycle) = @_;
    my ($replayed, $fresh, @p) = (0, 0);
    my @pending = @UNKNOWN;
    @UNKNOWN = ();
    for my $q (@pending) {
        my ($a, $code);
        my $deadline = time + 20;
        while (1) {
            $a = send_req($q);
            my $j = eval { decode_json($a->{body}) };
            $code = ref $j eq 'HASH' ? $j->{code} // '' : '';
            last unless $a->{status} == 599 || $a->{status} >= 500
                        || $code eq 'idempotency-key-in-flight';
            last if time > $deadline;
            sleep 0.1;
        }
        $STAT{retried}++;
        if ($a->{status} == $WANT{ $q->{kind} }) {
            classify($q, $a, 'retry', $cycle);
            if ($a->{replayed}) { $replayed++ } else { $fresh++ }
        } else {
            push @p, show_a($q, $a);
            push @UNKNOWN, $q if $a->{status} == 599 || $a->{status} >= 500;
        }
    }
    $STAT{replayed} += $replayed;
    $STAT{applied_by_retry} += $fresh;
    ok(!@p, "$label: all " . @pending . " requests without an answer, sent "
       . "again with their Idempotency-Key, answered as they must: $replayed "
       . "replayed (applied before the crash), $fresh applied now")
        or diag join "\n", @p[0 .. ($#p > 15 ? 15 : $#p)];
}

# acknowledged writes of this cycle sent again with their keys: the first
# answer, byte for byte, replayed
sub replay_sample {
    my ($label, $cycle, $k) = @_;
    my @keys = (shuffle sort grep { $ACK{$_}{cycle} eq $cycle
                                    && $ACK{$_}{via} eq 'load' } keys %ACK);
    splice @keys, $k if @keys > $k;
    my @p;
    for my $key (@keys) {
        my $x = $ACK{$key};
        my $a = send_req($x->{q});
        push @p, "sent again: " . show_a($x->{q}, $a) . "\nfirst answer: "
                 . "$x->{a}{status}: $x->{a}{body}"
            unless $a->{status} == $x->{a}{status} && $a->{replayed}
                   && $a->{body} eq $x->{a}{body};
    }
    ok(!@p, "$label: " . @keys . " acknowledged writes sent again with "
       . "their keys: the first answer, replayed, nothing applied twice")
        or diag join "\n", @p;
}

# --- the store against what the clients were told ---------------------------

# What the store holds, read in an order that needs no quiet moment (the
# expiry sweeper may append at any time): every item first, then (when
# $full) every item's history, then the log.  So the log, read last, holds
# every event that the items and histories read before it reflect: an item
# must equal the replay of its events in the log up to the item's version,
# and a history the events of its item in the log up to its last version.
# The full reading (histories from their own route) runs after (a), after
# (b) and at the end; after each crash the log alone is read.
sub check_store {
    my ($label, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my (@gap, @items, @acked, @extra, @resv);

    my (%item, %hist);
    $item{$_} = $n->req(GET => "/v1/inventory/$_") for @ITEMS;
    if ($o{full}) {
        for my $it (@ITEMS) {
            my ($s, $l) = item_parts($it);
            $hist{$it} = eval { item_events($n, $s, $l) }
                or push @items, "$it: $@";
        }
    }

    # the global log, walked with cursors
    my ($feed, $fp) = feed_pages($n, 0, 1000);
    push @gap, @$fp;
    push @gap, "the last seq is $feed->[-1]{seq}, the log holds "
               . @$feed . " events"
        if @$feed && ($feed->[-1]{seq} // 0) != @$feed;
    ok(!@gap, "$label: the global log is gap-free, seq 1 .. "
       . scalar(@$feed))
        or diag join "\n", @gap[0 .. ($#gap > 15 ? 15 : $#gap)];

    # every item's events in the log, replayed; the state after every
    # version
    my (%ev, %at);
    $ev{$_} = [] for @ITEMS;
    for my $e (@$feed) {
        my $it = ($e->{sku} // '?') . '/' . ($e->{location} // '?');
        if ($ev{$it}) { push @{ $ev{$it} }, $e }
        else { push @items, "an event of an unknown item: " . encode_json($e) }
    }
    for my $it (@ITEMS) {
        my ($s, $l) = item_parts($it);
        my $ev = $ev{$it};
        my (undef, $rp) = replay_events($ev, $s, $l);
        push @items, @$rp;
        my ($oh, $rs) = (0, 0);
        for my $e (@$ev) {
            my $d = $e->{data} // {};
            my $t = $e->{type} // '';
            if ($t eq 'StockCounted') { $oh = $d->{on_hand} }
            elsif ($t eq 'StockAdjusted') { $oh += $d->{delta} }
            elsif ($t eq 'StockReserved') { $rs += $d->{quantity} }
            elsif ($t eq 'ReservationCommitted') {
                $rs -= $d->{quantity};
                $oh -= $d->{quantity};
            } elsif ($t =~ /^Reservation(?:Released|Expired)\z/) {
                $rs -= $d->{quantity};
            } elsif ($t eq 'StockTransferredOut') { $oh -= $d->{quantity} }
            elsif ($t eq 'StockTransferredIn') { $oh += $d->{quantity} }
            $at{$it}{ $e->{version} } = [$e, $oh, $rs];
        }

        # the item as read before the log: the replay up to its version
        my $r = $item{$it};
        my $v = ref $r->{json} eq 'HASH' ? $r->{json}{version} // 0 : 0;
        my $at = $at{$it}{$v};
        if ($r->{status} != 200 || !$at) {
            push @items, "$it: GET answered $r->{status}, version $v; the "
                         . "log has " . @$ev . " events of it";
        } else {
            push @items, map { "$it: $_ (replay to v$v: on_hand $at->[1], "
                               . "reserved $at->[2])" }
                InvTest::item_problems($r->{json}, {
                    on_hand => $at->[1], reserved => $at->[2],
                    available => $at->[1] - $at->[2] });
        }

        # its history as read before the log: the log's events of it
        next unless $o{full} && $hist{$it};
        my $h = $hist{$it};
        my @mine = @$ev[0 .. ($#$h < $#$ev ? $#$h : $#$ev)];
        push @items, "$it: its history holds " . @$h . " events, the log "
                     . @$ev . " of it" if @$h > @$ev;
        for my $k (0 .. $#mine) {
            next if encode_json($h->[$k]) eq encode_json($mine[$k]);
            push @items, "$it: history event $k is " . encode_json($h->[$k])
                         . ", the log has " . encode_json($mine[$k]);
            last;
        }
    }
    ok(!@items, "$label: each item is the replay of its events in the log "
       . "(0 <= reserved <= on_hand at every version, available = on_hand "
       . "- reserved)" . ($o{full} ? ", its history route answers those "
                                     . "events" : ''))
        or diag join "\n", @items[0 .. ($#items > 15 ? 15 : $#items)];

    # the log's events by the write they belong to
    my (%by_reason, %by_res);
    for my $e (@$feed) {
        my $d = ref $e->{data} eq 'HASH' ? $e->{data} : {};
        if (defined $d->{reservation_id}) {
            push @{ $by_res{ $d->{reservation_id} }{ $e->{type} } }, $e;
        } elsif (defined $d->{reason}) {
            push @{ $by_reason{ $d->{reason} } }, $e;
        } else {
            push @extra, "an event of no write: " . encode_json($e);
        }
    }

    # every acknowledged write: its events, at the versions it answered,
    # with the state it answered
    my $durable = $o{durable_seq};
    my $n_ack = 0;
    for my $key (sort keys %ACK) {
        my $x = $ACK{$key};
        my ($q, $j) = @$x{qw(q j)};
        my $k = $q->{kind};
        my @seqs;
        $n_ack++;
        my $one = sub {    # the event at ($item, $item_json's version)
            my ($item, $ij, $type, $want) = @_;
            my $v = ref $ij eq 'HASH' ? $ij->{version} // 'none' : 'none';
            my $at = $at{$item}{$v};
            my $e = $at ? $at->[0] : undef;
            if (!$e) {
                push @acked, "acknowledged $k $key: $item has no version $v";
                return;
            }
            push @seqs, $e->{seq};
            my $d = $e->{data} // {};
            my @bad = grep { ($d->{$_} // '') ne $want->{$_} } sort keys %$want;
            push @acked, "acknowledged $k $key: $item v$v is "
                         . encode_json($e) . ", expected $type "
                         . encode_json($want)
                if $e->{type} ne $type || @bad;
            push @acked, "acknowledged $k $key answered $item on_hand "
                         . "$ij->{on_hand} reserved $ij->{reserved} at v$v, "
                         . "the log has $at->[1] / $at->[2]"
                if $at->[1] != $ij->{on_hand} || $at->[2] != $ij->{reserved};
        };
        if ($k eq 'adjust') {
            $one->($q->{item}, $j, 'StockAdjusted',
                   { delta => $q->{delta}, reason => $key });
        } elsif ($k eq 'put') {
            $one->($q->{item}, $j, 'StockCounted',
                   { on_hand => $q->{on_hand}, reason => $key });
        } elsif ($k eq 'transfer') {
            my (undef, $fl) = item_parts($q->{from});
            my (undef, $tl) = item_parts($q->{to});
            $one->($q->{from}, $j->{from}, 'StockTransferredOut',
                   { quantity => $q->{quantity}, to => $tl, reason => $key });
            $one->($q->{to}, $j->{to}, 'StockTransferredIn',
                   { quantity => $q->{quantity}, from => $fl,
                     reason => $key });
        } else {
            my $id = $k eq 'end' ? $q->{id} : $j->{id} // 'none';
            my $type = $k ne 'end' ? 'StockReserved'
                     : $q->{op} eq 'commit' ? 'ReservationCommitted'
                     : 'ReservationReleased';
            my $lines = $k eq 'end' ? ($RES{$id} // {})->{lines} // []
                                    : $q->{lines};
            my @ev = @{ $by_res{$id}{$type} // [] };
            for my $line (@$lines) {
                my ($s, $l) = item_parts($line->[0]);
                my @m = grep { $_->{sku} eq $s && $_->{location} eq $l } @ev;
                push @acked, "acknowledged $k $key: reservation $id has "
                             . @m . " $type events on $line->[0], expected 1 "
                             . "of quantity $line->[1]"
                    unless @m == 1 && $m[0]{data}{quantity} == $line->[1];
                push @seqs, map { $_->{seq} } @m;
            }
            push @acked, "acknowledged $k $key: reservation $id has " . @ev
                         . " $type events for " . @$lines . " lines"
                unless @ev == @$lines;
        }
        # acknowledged before the crash: in the store verify saw after it
        if (defined $durable && $x->{via} eq 'load'
            && $x->{cycle} eq $o{cycle} && @seqs && max(@seqs) > $durable)
        {
            push @acked, "acknowledged $k $key before the crash has seq "
                         . max(@seqs) . ", but the store after the crash "
                         . "held $durable events";
        }
        last if @acked > 20;
    }
    ok(!@acked, "$label: all $n_ack acknowledged writes are in the log, at "
       . "the versions and with the stock they answered"
       . (defined $durable ? ", those of this cycle within the $durable "
                             . "events the crashed store held" : ''))
        or diag join "\n", @acked[0 .. ($#acked > 15 ? 15 : $#acked)];

    # nothing else: each event belongs to one acknowledged write, once
    my %types = (adjust => 'StockAdjusted', put => 'StockCounted',
                 transfer => 'StockTransferredIn StockTransferredOut');
    for my $key (sort keys %by_reason) {
        my $x = $ACK{$key};
        my $got = join ' ', sort map { $_->{type} } @{ $by_reason{$key} };
        if (!$x) {
            push @extra, "the log has $got of key $key, which "
                         . ($SENT{$key} ? 'was never acknowledged'
                                        : 'was never sent');
        } elsif ($got ne ($types{ $x->{q}{kind} } // '?')) {
            push @extra, "key $key ($x->{q}{kind}) has the events $got";
        }
    }
    for my $id (sort keys %by_res) {
        my $r = $RES{$id};
        my $h = $by_res{$id};
        if (!$r) {
            push @extra, "the log has a reservation nobody was told about: "
                         . "$id: " . join(' ', sort keys %$h);
            next;
        }
        my %ends = map { $_ => scalar @{ $h->{$_} } }
                   grep { $_ ne 'StockReserved' } keys %$h;
        my $lines = @{ $r->{lines} };
        if (!%ends) {
            push @extra, "reservation $id is $r->{state}, the log has no end"
                unless $r->{state} eq 'active';
            push @extra, "reservation $id of 1 s has not expired"
                if $r->{short} && $o{final};
        } elsif (keys %ends > 1 || (values %ends)[0] != $lines) {
            push @extra, "reservation $id ($lines lines) ended by "
                         . encode_json(\%ends);
        } elsif ($ends{ReservationExpired}) {
            if ($r->{short} && $r->{state} =~ /^(?:active|expired)\z/) {
                $r->{dirty} = 1 if $r->{state} eq 'active';
                $r->{state} = 'expired';
            } else {
                push @extra, "reservation $id ($r->{state}, "
                             . ($r->{short} ? '' : 'not ') . "short) expired";
            }
        }
        my %other = map { $_ => 1 } grep { !/^(?:StockReserved
                         |Reservation(?:Committed|Released|Expired))\z/x }
                    keys %$h;
        push @extra, "reservation $id has events " . join(' ', keys %other)
            if %other;
        last if @extra > 20;
    }
    ok(!@extra, "$label: every event in the log belongs to exactly one "
       . "acknowledged write (or is the expiry of a 1 s reservation)")
        or diag join "\n", @extra[0 .. ($#extra > 15 ? 15 : $#extra)];

    # reservations made or ended since the last check, read back
    my $ka = HTTP::Tiny->new(keep_alive => 1, timeout => 15, agent => 't71');
    my $nr = 0;
    for my $id (sort grep { $RES{$_}{dirty} } keys %RES) {
        my $r = $RES{$id};
        my $res = $ka->get($n->url("/v1/reservations/$id"));
        my $j = $res->{status} == 200 ? eval { decode_json($res->{content}) }
                                      : undef;
        $nr++;
        my @p = $j ? InvTest::reservation_problems($j, {
                         id => $id, reference => $r->{key},
                         lines => [ map { [ item_parts($_->[0]), $_->[1] ] }
                                    @{ $r->{lines} } ] })
                   : ("GET answered $res->{status}: "
                      . substr($res->{content} // '', 0, 200));
        push @p, "state is $j->{state}, expected $r->{state}"
            if $j && $j->{state} ne $r->{state}
               && !($r->{short} && $r->{state} eq 'active'
                    && $j->{state} eq 'expired');
        push @resv, map { "reservation $id: $_" } @p;
        $r->{dirty} = 0 unless @p;
        last if @resv > 20;
    }
    ok(!@resv, "$label: $nr reservations made or ended since the last "
       . "check read back with their reference, lines and state")
        or diag join "\n", @resv[0 .. ($#resv > 15 ? 15 : $#resv)];

    return scalar @$feed;
}

sub report_bad {
    my ($label) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(!@BAD, "$label: every answer was complete and the one the request "
       . "must get (or no answer at all)")
        or diag join "\n", @BAD[0 .. ($#BAD > 20 ? 20 : $#BAD)];
    @BAD = ();
}

# --- setup ------------------------------------------------------------------

for my $it (@ITEMS) {
    my $q = { key => "setup-$it", kind => 'put', item => $it,
              on_hand => $START, method => 'PUT',
              path => "/v1/inventory/$it",
              body => encode_json({ on_hand => $START,
                                    reason => "setup-$it" }) };
    sent($q);
    my $a = send_req($q);
    $a->{status} = 200 if $a->{status} == 201;     # created
    classify($q, $a, 'setup', 'setup');
}
report_bad('setup');

# --- (a) SIGKILL every nginx process while clients write ------------------

# The master is stopped first (SIGSTOP), so that it cannot start a worker
# between the reading of its children and the kill; then it and every
# worker get SIGKILL.  Returns the pids.
sub kill_everything {
    my $m = $n->master_pid;
    die "no live master\n" unless $m && pid_alive($m);
    kill 'STOP', $m;
    my @w = $n->worker_pids;
    kill 'KILL', $m, @w;
    return ($m, @w);
}

# Start nginx again on the same prefix and data directory after a crash:
# the harness's instance still holds running = 1 (nothing told it nginx
# died); clear it and launch as start() does (a stale nginx.pid is
# overwritten; nginx binds with SO_REUSEADDR, so connections of the killed
# processes left in TIME_WAIT do not matter).
sub relaunch {
    $n->{running} = 0;
    return eval { $n->_launch; 1 } ? '' : ($@ || 'unknown error');
}

my ($n_cycles_acked, $n_cycles_unknown, %per_cycle) = (0, 0);
for my $c (1 .. $CYCLES) {
    my $label = "(a) crash $c";
    my $delay = 0.2 + rand 1.3;
    my @killed;
    my ($ctl, $acked, $unknown) = run_load("a$c", "a$c", sub {
        # the load has started when every client has had an answer
        my $deadline = time + 10;
        sleep 0.01 while time < $deadline
                         && grep { !-e "$DIR/journal-a$c-$_.ready" }
                            0 .. $CLIENTS - 1;
        sleep $delay;
        @killed = kill_everything();
        return 1;
    });
    my @left = grep { !wait_gone($_, 15) } @killed;
    ok(@killed == 3 && !@left, "$label: SIGKILL to the master and its "
       . "workers (@killed) after " . sprintf('%.2f', $delay) . " s of load")
        or diag "still alive: @left";
    $n->_san_check;
    $per_cycle{$c} = "$acked/" . ($acked + $unknown);
    $n_cycles_acked += $acked;
    $n_cycles_unknown += $unknown;
    report_bad($label);

    # the store as the crash left it
    my $durable = verify_ok($D, undef, "$label: the crashed store");

    my $err = relaunch();
    ok(!$err, "$label: nginx starts again on the same data directory")
        or do { diag $err; done_testing; exit 1 };
    $n->check_log("$label, restarted");

    resolve_unknown($label, "a$c");
    replay_sample($label, "a$c", 5);
    report_bad("$label, after the restart");
    check_store($label, cycle => "a$c", durable_seq => $durable,
                full => $c == $CYCLES);
}
diag "(a) acknowledged/sent per crash: "
     . join(' ', map { "$_:$per_cycle{$_}" }
                 sort { $a <=> $b } keys %per_cycle);
ok($n_cycles_acked > 50 * $CYCLES, "(a) $n_cycles_acked writes acknowledged "
   . "under load, $n_cycles_unknown without an answer, over $CYCLES crashes");

diag sprintf "(a) took %.1f s", time - $T0;
my $T1 = time;

# --- (b) SIGKILL one worker at a time, in the middle of a commit -----------

# the worker one of whose threads holds LMDB's write lock (read from
# lock.mdb).  Only used to choose the victim: undef when the layout is not
# recognized.
my $LOCK_LAYOUT;
sub lock_holder {
    my ($w) = @_;
    my $tid = InvTest::write_lock_tid($D);
    $LOCK_LAYOUT = defined $tid ? 1 : 0;
    return undef unless $tid;
    for my $p (@$w) { return $p if -e "/proc/$p/task/$tid" }
    return undef;
}


{
    my $label = '(b)';
    my (@kills, @p);
    my $probe = 0;
    my ($ctl, $acked, $unknown) = run_load('b', 'b', sub {
        sleep 0.5;
        for my $k (1 .. $KILLS) {
            my @w = $n->workers_now(15);
            if (!@w) { push @p, "kill $k: not 2 workers"; last }
            sleep 0.1 + rand 0.3;
            my $victim;
            my $until = time + 2;
            until (defined($victim = lock_holder(\@w)) || time > $until) {
                sleep 0.001;
            }
            my $held = defined $victim ? 1 : 0;
            $victim //= $w[rand @w];
            my ($survivor) = grep { $_ != $victim } @w;
            my $dead = "worker process $victim exited on signal 9";
            $n->allow_log(qr/\[alert\] \d+#\d+: \Q$dead\E$/);
            kill 'KILL', $victim;
            my @now = $n->workers_now(15, $victim);
            push @p, "kill $k: no new worker within 15 s of killing "
                     . "$victim (workers now: " . join(' ', $n->worker_pids)
                     . ')' unless @now;
            push @p, "kill $k: the surviving worker $survivor is gone"
                unless grep { $_ == $survivor } @now;
            # a write answered by the survivor, after the kill
            my $ok = 0;
            my $deadline = time + 20;
            while (!$ok && time < $deadline) {
                my $item = $ITEMS[rand @ITEMS];
                my $key = "probe-$k-" . ++$probe;
                my $q = { key => $key, kind => 'adjust', item => $item,
                          delta => 1, method => 'POST',
                          path => "/v1/inventory/$item/adjustments",
                          body => encode_json({ delta => 1,
                                                reason => $key }) };
                sent($q);
                my $a = send_req($q);
                classify($q, $a, 'probe', 'b');
                $ok = 1 if $a->{status} == 200
                           && ($a->{worker} // 0) == $survivor;
            }
            push @p, "kill $k: no write answered by the surviving worker "
                     . "$survivor within 20 s of killing $victim"
                unless $ok;
            # the store as this kill left it, while the load goes on
            my ($rc, $out, $err) = admin_run('verify', $D);
            push @p, "kill $k: inventory-admin verify exit $rc: $out$err"
                unless $rc == 0 && $out =~ /\Averify: ok, \d+ events\n\z/;
            push @kills, sprintf('%d%s->%s', $victim, $held ? '*' : '',
                                 join('+', grep { $_ != $survivor } @now));
        }
        return 1;
    });
    diag "(b) kills (victim, * = it held the write lock -> new worker): "
         . join(' ', @kills);
    ok(@kills == $KILLS && !@p, "(b) $KILLS workers killed one at a time "
       . "under write load; each time the master started a new one, the "
       . "other worker answered a write and inventory-admin verify passed")
        or diag join "\n", @p;
    my $held = grep { /\*/ } @kills;
    if ($LOCK_LAYOUT) {
        ok($held >= 1, "(b) $held of the kills hit a worker holding LMDB's "
           . "write lock");
    } else {
        diag '(b) lock.mdb layout not recognized: victims chosen at random';
    }
    report_bad($label);
    diag "(b) $acked writes acknowledged under load, $unknown without an "
         . "answer";
    ok($acked > 100, "(b) $acked writes acknowledged under load");
    resolve_unknown($label, 'b');
    replay_sample($label, 'b', 10);
    report_bad("$label, after the retries");
    check_store($label, full => 1);
    $n->check_log('(b)');
    diag sprintf "(b) took %.1f s", time - $T1;
}

# --- the end: the 1 s reservations expired; a graceful stop; verify ---------

{
    # the 1 s reservations are expired within 2 s of expires_at (the
    # contract); 3 s more of grace for a busy machine
    my $last = max(0, map { ts_ms($RES{$_}{expires_at}) // 0 }
                      grep { $RES{$_}{short} } keys %RES);
    sleep_until($last / 1000 + 5);
    my $events = check_store('the end', final => 1, full => 1);
    report_bad('the end');
    $n->stop;
    my $v = verify_ok($D, undef, 'after a graceful stop');
    is($v, $events, 'verify counts the events the log holds');
}

diag sprintf "t/71: %d acknowledged writes checked (%d retried after no "
    . "answer: %d had been applied, %d applied by the retry); %.1f s",
    $STAT{acked}, $STAT{retried}, $STAT{replayed}, $STAT{applied_by_retry},
    time - $T0;
done_testing;
