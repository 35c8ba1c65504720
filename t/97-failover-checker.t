#!/usr/bin/perl
# Failover with synchronous replication, checked as Jepsen would: clients
# write through one front while the primary is killed and another node
# takes its place, then every acknowledged write is looked for in what the
# cluster kept.  Two modes, a cluster of their own each, the same load and
# the same checks:
#
# * manual: three nodes from conf/cluster-node.conf
#   (inventory_sync_replicas 1), A the primary (%%FOLLOW%% empty), B and C
#   its followers (%%FOLLOW%% the inventory_follow line naming A).  Each
#   round the primary's master and workers get SIGKILL; of its two
#   followers, the one with the highest store.last_seq (once they stop
#   moving; on a tie, the next node in A-B-C order, so the roles rotate) is
#   promoted (its %%FOLLOW%% line emptied, reload: epoch + 1), the other
#   re-pointed at it (reload), and the killed node started again as its
#   follower (it rejoins, from a snapshot when it had committed what the
#   new primary never got).  No write sent once the primary was dead may
#   have a 2xx before the promotion's reload: there was no primary.
# * automatic: an etcd cluster of three members on loopback (as in
#   t/98-cluster.t) and three nodes from conf/cluster-node.conf with
#   %%FOLLOW%% the inventory_cluster line (etcd=, name=nA/nB/nC,
#   advertise= its own stream, ttl=2s), started with empty stores: they
#   elect one, the others copy its store.  Each round the fault is only
#   the SIGKILL of the primary's master and workers: the others elect one
#   of themselves (it must be one holding the highest last_seq, and at
#   epoch + 1), and once it says primary the killed node is started again,
#   as it was: it rejoins as a follower by itself.  Nothing is reloaded.
#   No write sent once the primary was dead may have a 2xx less than half
#   a ttl after the moment the killed primary last said it could take
#   writes (inventory_cluster_writable 1): its lead lasts that long at
#   least, and no other node may lead meanwhile.
#
# In both modes a front from conf/cluster-front.conf (plain nginx, no
# module) is over the three nodes, and 12 items (4 SKUs x 3 locations) are
# seeded on the primary, held by both followers: each of $STOCK, but one
# of $SCARCE, so that writes are refused for want of stock all along.
#
# * $CLIENTS clients (forked) write through the front only, each write
#   with an Idempotency-Key of its own: reservations of 1-3 (their key as
#   "reference"), the commit or release of a reservation the client made,
#   transfers of 1-2 between two locations of a SKU (their key as
#   "reason").  A 500/502/503/504, a connection error or 409
#   idempotency-key-in-flight is retried with the same key until a 2xx, a
#   refusal (4xx), or $OP_DEADLINE s; each client writes every answered
#   write (op, key, status, reservation id, quantities, times, the 500s
#   it got) to a file.  A 2xx is an acknowledged write.  A 500 is retried
#   because only the key tells whether the write stands, but no node may
#   answer one: a node that can neither take a write nor pass it on says
#   503 (checked at the end).
# * $ROUNDS rounds of $SECONDS s of load, a failover in each.  The time
#   from the kill to the first 2xx through the front of a write sent once
#   the primary was dead is measured (p50 and max are printed).
# * At the end, writes left undecided at the deadline are retried with
#   their key until decided, so that every write is either applied (2xx)
#   or refused (4xx).  The final primary then holds exactly what the
#   answers say, which is what is checked:
#   - the feed is 1..N without a gap; its StockReserved events are exactly
#     the acknowledged reservations (none missing: none lost; none more:
#     none applied twice, no refused one applied), each once, on the item
#     and quantity answered; every ReservationCommitted/Released is one
#     acknowledged commit/release, each once; every transfer's events are
#     one acknowledged transfer (its reason is the key), each once, and no
#     refused transfer has any;
#   - every acknowledged reservation is there (GET) with its reference,
#     lines and the state its acknowledged end implies (committed,
#     released, or active/expired with none);
#   - each item's on_hand is its seed - committed + transferred in -
#     transferred out, its reserved the sum of the acknowledged
#     reservations not ended (all from the answers alone); per SKU, the
#     sum of on_hand is the seed minus the committed quantities;
#   - a sample of acknowledged writes and of refusals sent again with
#     their key is replayed (same status and body, Idempotent-Replayed:
#     true) and appends nothing;
#   - the final primary is at the first primary's epoch + $ROUNDS (one
#     promotion a failover, no other); every follower reaches its last
#     seq, at the same epoch; dump and dump --all equal the primary's byte
#     for byte, verify passes.
#
# INVENTORY_FAILOVER_MODE (manual, automatic, or both: the default) picks
# the modes; the automatic one is skipped without etcd (make deps).
# INVENTORY_FAILOVER_ROUNDS (default 1) and INVENTORY_FAILOVER_SECONDS
# (default 8, a round) size the run of each mode; SEED=n repeats the
# clients' choices.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use File::Temp qw(tempdir);
use List::Util qw(shuffle);
use HTTP::Tiny;
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(encode_json decode_json ipath slurp parallel parallel_start
               parallel_stop feed_pages last_seq wait_applied same_store_ok
               sleep_until which free_port metric_value
               RES_ID_RE);

my $SEED = int($ENV{SEED} // ((time * 1000 % 1e9) ^ $$));
diag "SEED=$SEED";
srand $SEED;

my $MODES = $ENV{INVENTORY_FAILOVER_MODE} // 'both';
my @MODES = $MODES eq 'both' ? qw(manual automatic) : ($MODES);
plan skip_all => "INVENTORY_FAILOVER_MODE=$MODES: manual, automatic or "
                 . 'both' if grep { !/\A(?:manual|automatic)\z/ } @MODES;

my $ROUNDS = $ENV{INVENTORY_FAILOVER_ROUNDS} // 1;
my $SECONDS = $ENV{INVENTORY_FAILOVER_SECONDS} // 8;
my $CLIENTS = 4;
my $OP_DEADLINE = 20;       # s: a write still undecided then is left for
                            # the end
my $TTL = 2;                # s: the automatic mode's inventory_cluster ttl
my $STOCK = 1000 * $ROUNDS;     # an item's seed: ample for the load...
my $SCARCE = 5;                 # ... but for FO-1/l3's
my @SKUS = map { "FO-$_" } 1 .. 4;
my @LOCS = qw(l1 l2 l3);
my @ITEMS = map { my $s = $_; map { "$s/$_" } @LOCS } @SKUS;
my %SEEDED = map { ($_ => $STOCK) } @ITEMS;
$SEEDED{'FO-1/l3'} = $SCARCE;
my @ORDER = qw(A B C);
my $T0 = time;

# the mode being run: its nodes by name, its primary now, its front, the
# clients' logs, its first primary's epoch
my ($MODE, %N, $primary, $front, $LOGDIR, $EPOCH0);

# --- configurations ---------------------------------------------------------

# conf/cluster-node.conf with %%FOLLOW%% replaced by $line
sub node_conf {
    my ($line) = @_;
    my $c = InvTest::example_conf('cluster-node.conf');
    die "cluster-node.conf lacks %%FOLLOW%%\n" unless $c =~ /%%FOLLOW%%/;
    $c =~ s/%%FOLLOW%%/$line/g;
    return $c;
}

# manual: following the node on that port, or the primary (undef)
sub follow_line {
    my ($port) = @_;
    return defined $port
        ? "inventory_follow http://127.0.0.1:$port/replication/;" : '';
}

# automatic: the node named $name of the cluster that etcd at $etcd elects
# among; InvTest fills in its own port in the advertised URL
sub cluster_line {
    my ($etcd, $name) = @_;
    return "inventory_cluster etcd=$etcd name=$name "
           . "advertise=http://127.0.0.1:%%PORT%%/replication/ ttl=${TTL}s;";
}

# conf/cluster-front.conf over the nodes' ports
sub front_conf {
    my (@ports) = @_;
    my $f = "$InvTest::ROOT/conf/cluster-front.conf";
    my $c = slurp($f) // die "$f: $!";
    for my $i (1 .. 3) {
        die "$f lacks %%NODE$i%%\n" unless $c =~ /%%NODE$i%%/;
        $c =~ s/%%NODE$i%%/127.0.0.1:$ports[$i - 1]/g;
    }
    return $c;
}

sub health { $_[0]->req(GET => '/v1/health')->{json} // {} }

# --- etcd (automatic mode): three members on loopback, as in t/98 ----------
my $ETCD;

# --- the cluster ------------------------------------------------------------

# wait_followers($p, @f): true once each of @f reports, at $p's epoch, a
# connection to $p (and $p counts them)
sub wait_followers {
    my ($p, @f) = @_;
    my $url = $N{$p}->url('/replication/');
    my $deadline = time + 30;
    while (time < $deadline) {
        my $hp = health($N{$p});
        my $ok = ($hp->{role} // '') eq 'primary'
                 && ($hp->{followers} // 0) >= @f;
        for my $f (@f) {
            my $h = health($N{$f});
            $ok &&= ($h->{role} // '') eq 'follower'
                    && ($h->{epoch} // -1) == ($hp->{epoch} // -2)
                    && ($h->{store_id} // '') eq ($hp->{store_id} // '?')
                    && ref $h->{replication} eq 'HASH'
                    && ($h->{replication}{primary} // '') eq $url
                    && $h->{replication}{connected};
        }
        return 1 if $ok;
        sleep 0.05;
    }
    return 0;
}

# elected($wait, @among): the one node of @among whose health says
# primary, within $wait s; undef when none (or more than one) does
sub elected {
    my ($wait, @among) = @_;
    my $deadline = time + $wait;
    while (1) {
        my @p = grep { (health($N{$_})->{role} // '') eq 'primary' } @among;
        return $p[0] if @p == 1;
        return undef if time > $deadline;
        sleep 0.05;
    }
}

# manual: A the primary, B and C its followers
sub start_manual {
    $N{A} = InvTest->start(conf => node_conf(follow_line(undef)));
    $N{$_} = InvTest->start(conf => node_conf(follow_line($N{A}->port)))
        for qw(B C);
    $primary = 'A';
    ok(wait_followers('A', 'B', 'C'), 'B and C follow A, and A counts them')
        or return 0;
    is(health($N{A})->{sync_replicas}, 1, 'A: sync_replicas 1');
    is(health($N{$_})->{role}, 'follower', "$_: a follower") for qw(B C);
    return 1;
}

# automatic: etcd, then three nodes with empty stores, which elect one
sub start_automatic {
    $ETCD = InvTest::Etcd->new(members => 3);
    my $etcd = $ETCD->urls;
    $ETCD->start($_) for 0 .. 2;
    if (!ok($ETCD->ready(0), 'an etcd cluster of three members answers on '
                             . 'loopback')) {
        diag($ETCD->log(0));
        return 0;
    }

    $N{$_} = InvTest->start(conf => node_conf(cluster_line($etcd, "n$_")))
        for @ORDER;
    my $port = $N{A}->port;
    like($N{A}{conf_text}, qr{^\s*inventory_cluster\ etcd=\S+\ name=nA
                              \ advertise=http://127\.0\.0\.1:$port
                              /replication/\ ttl=}mx,
         'the nodes run conf/cluster-node.conf with an inventory_cluster '
         . 'line, their own port advertised');
    my $t = time;
    $primary = elected(20, @ORDER);
    ok($primary, 'one node was elected the primary') or return 0;
    my @others = grep { $_ ne $primary } @ORDER;
    ok(wait_followers($primary, @others), "the others (@others) follow "
       . "$primary, and $primary counts them") or return 0;
    my @ids = map { health($N{$_})->{store_id} // '' } @ORDER;
    is(scalar(grep { $_ eq $ids[0] } @ids), 3,
       'the others copied its store (one store_id)');
    is(health($N{$primary})->{sync_replicas}, 1,
       "$primary: sync_replicas 1");
    diag sprintf "$primary elected in %.1f s", time - $t;
    return 1;
}

# --- the clients ------------------------------------------------------------

# transient($r): an answer after which the same write is sent again.  A
# 500 too: whether the write stands is not known (a write a node applied
# may be answered 500 when sent again), and only its key decides it; but
# no node should answer one, which is checked at the end.
sub transient {
    my ($r) = @_;
    my $st = $r->{status};
    return 1 if $st == 500 || $st == 502 || $st == 503 || $st == 504
                || $st == 599;
    return 1 if $st == 409 && ref $r->{json} eq 'HASH'
                && ($r->{json}{code} // '') eq 'idempotency-key-in-flight';
    return 0;
}

# send_op($node, \%op, $deadline): sends the write until it is decided or
# the deadline passes; fills in st (the status; 0 when undecided), code,
# b (the body of the deciding answer), rp (replayed), t0/t1 (the last
# attempt's send and answer times), tries, n500/t500 (how many 500s, when
# the first was sent)
sub send_op {
    my ($node, $op, $deadline) = @_;
    while (1) {
        my $t0 = time;
        my $r = $node->req($op->{m} => $op->{p},
            (defined $op->{j} ? (json => $op->{j}) : ()),
            headers => { 'Idempotency-Key' => $op->{key} });
        $op->{tries}++;
        @$op{qw(t0 t1)} = ($t0, time);
        if ($r->{status} == 500) {
            $op->{n500}++;
            $op->{t500} //= $t0;
        }
        if (!transient($r) || time > $deadline) {
            my $decided = !transient($r);
            $op->{st} = $decided ? $r->{status} : 0;
            $op->{last} = $r->{status};
            $op->{code} = ref $r->{json} eq 'HASH' ? $r->{json}{code} : undef;
            $op->{rp} = InvTest::replayed($r) ? 1 : 0;
            $op->{b} = $r->{body} if $decided;
            return $op;
        }
        sleep 0.03 + rand 0.04;
    }
}

sub client {
    my ($c, $stop) = @_;
    srand($SEED + 7919 * ($c + 1));
    open my $log, '>', "$LOGDIR/client-$c.log" or die "client log: $!";
    $log->autoflush(1);
    my (@active, $n, %count);
    my $m = substr $MODE, 0, 1;
    until ($stop->()) {
        my %op = (c => $c, key => "fo-$SEED-$m-c$c-" . ++$n, ts => time);
        if (@active && (@active >= 8 || rand() < 0.35)) {
            my $x = splice @active, int rand @active, 1;
            my $kind = rand() < 0.6 ? 'commit' : 'release';
            %op = (%op, op => $kind, m => 'POST', id => $x->{id},
                   p => "/v1/reservations/$x->{id}/$kind");
        } elsif (rand() < 0.6) {
            my ($sku, $loc) = split m{/}, $ITEMS[rand @ITEMS];
            my $q = 1 + int rand 3;
            %op = (%op, op => 'reserve', m => 'POST', sku => $sku,
                   loc => $loc, q => $q, p => ipath($sku, $loc)
                   . '/reservations', j => { quantity => $q,
                   ttl_seconds => 3600, reference => $op{key} });
        } else {
            my $sku = $SKUS[rand @SKUS];
            my ($from, $to) = (shuffle @LOCS)[0, 1];
            my $q = 1 + int rand 2;
            %op = (%op, op => 'transfer', m => 'POST', sku => $sku,
                   from => $from, to => $to, q => $q, p => '/v1/transfers',
                   j => { sku => $sku, from => $from, to => $to,
                          quantity => $q, reason => $op{key} });
        }
        send_op($front, \%op, $op{ts} + $OP_DEADLINE);
        if ($op{op} eq 'reserve' && $op{st} == 201) {
            my $j = eval { decode_json($op{b}) } // {};
            $op{id} = $j->{id};
            push @active, { id => $op{id} } if defined $op{id};
        }
        print {$log} encode_json(\%op), "\n";
        $count{ $op{st} ? "$op{op} $op{st}" : "$op{op} undecided" }++;
    }
    close $log;
    return join ', ', map { "$_: $count{$_}" } sort keys %count;
}

# --- the failovers ----------------------------------------------------------

# settled(@nodes): { node => store.last_seq } once no node's last_seq has
# moved for 3 polls in a row (the dead primary sends no more)
sub settled {
    my (@f) = @_;
    my (%last, %same);
    my $deadline = time + 10;
    while (time < $deadline) {
        for my $f (@f) {
            my $s = health($N{$f})->{store}{last_seq} // -1;
            $same{$f} = defined $last{$f} && $last{$f} == $s
                        ? $same{$f} + 1 : 0;
            $last{$f} = $s;
        }
        last unless grep { $same{$_} < 3 } @f;
        sleep 0.05;
    }
    return \%last;
}

# rejoined($f): how the node killed in that failover rejoined, once it
# follows the new primary: the snapshots it took since its restart
sub rejoined {
    my ($f) = @_;
    $f->{snapshots} = InvTest::metric_value($N{ $f->{victim} },
        'inventory_replication_snapshots_total') // 0;
}

# manual: the follower with the highest last_seq promoted by a reload, the
# other re-pointed at it, the killed node started again as its follower;
# fills in \%f; returns the problems
sub fail_over_manual {
    my ($f, $epoch, @fol) = @_;
    my ($round, $victim) = @$f{qw(round victim)};
    my @p;

    # the follower to promote: the highest last_seq holds every
    # acknowledged write; on a tie the next in A-B-C order
    my $seq = settled(@fol);
    my $pref = $ORDER[(index(join('', @ORDER), $victim) + 1) % 3];
    my ($new) = sort { $seq->{$b} <=> $seq->{$a}
                       || ($b eq $pref) <=> ($a eq $pref) } @fol;
    my ($other) = grep { $_ ne $new } @fol;
    @$f{qw(new other seq_new seq_other)} =
        ($new, $other, $seq->{$new}, $seq->{$other});
    $f->{settled} = time;

    $N{$new}->reconfigure(conf => node_conf(follow_line(undef)));
    $f->{hup} = time;
    $N{$new}->reload;
    $f->{promoted} = time;
    my $h = health($N{$new});
    push @p, "round $round: $new after the reload: role "
             . ($h->{role} // 'null') . ', epoch ' . ($h->{epoch} // 'null')
             . ", expected primary at " . ($epoch + 1)
        unless ($h->{role} // '') eq 'primary'
               && ($h->{epoch} // -1) == $epoch + 1;

    $N{$other}->reconfigure(conf => node_conf(follow_line($N{$new}->port)));
    $N{$other}->reload;
    $f->{repointed} = time;

    $N{$victim}->reconfigure(conf => node_conf(follow_line($N{$new}
                                                           ->port)));
    $N{$victim}->_launch;
    $f->{restarted} = time;
    $primary = $new;
    return @p;
}

# automatic: nothing but waiting: the others elect one of themselves, which
# must hold the highest last_seq and be at epoch + 1; once it says primary
# the killed node is started again as it was; fills in \%f; returns the
# problems
sub fail_over_automatic {
    my ($f, $epoch, @fol) = @_;
    my ($round, $victim) = @$f{qw(round victim)};
    my @p;

    my $seq = settled(@fol);
    $f->{settled} = time;
    my $new = elected(2 * $TTL + 10, @fol);
    $f->{elected} = time;
    if (defined $new) {
        my ($other) = grep { $_ ne $new } @fol;
        @$f{qw(new other seq_new seq_other)} =
            ($new, $other, $seq->{$new}, $seq->{$other});
        push @p, "round $round: $new (last_seq $seq->{$new}) elected over "
                 . "$other, which holds more ($seq->{$other})"
            if $seq->{$other} > $seq->{$new};
        my $h = health($N{$new});
        push @p, "round $round: $new elected: epoch "
                 . ($h->{epoch} // 'null') . ', expected ' . ($epoch + 1)
            unless ($h->{epoch} // -1) == $epoch + 1;
        $f->{epoch} = $h->{epoch};
    } else {
        push @p, sprintf 'round %d: none of %s says primary %.1f s after '
                         . 'the kill (health roles: %s)', $round, "@fol",
                         time - $f->{kill}, join ', ', map {
                             "$_ " . (health($N{$_})->{role} // 'none') }
                         @fol;
    }

    # the killed node comes back as it was: it must rejoin by itself
    $N{$victim}->_launch;
    $f->{restarted} = time;
    $primary = $new // elected(30, @ORDER) // $victim;
    return @p;
}

# --- a run ------------------------------------------------------------------
sub run_mode {
    ($MODE) = @_;
    %N = ();
    ($primary, $front, $EPOCH0) = ();
    my $auto = $MODE eq 'automatic';
    my $t_mode = time;
    $auto ? start_automatic() : start_manual() or return stop_all();
    $EPOCH0 = health($N{$primary})->{epoch};
    my @fol = grep { $_ ne $primary } @ORDER;

    my $bad_seed = 0;
    for my $it (@ITEMS) {
        my $r = $N{$primary}->req(PUT => "/v1/inventory/$it",
                                  json => { on_hand => $SEEDED{$it} },
                                  headers => { 'Idempotency-Key'
                                               => "seed-$it" });
        $bad_seed++ unless $r->{status} == 201;
    }
    is($bad_seed, 0, scalar(@ITEMS) . " items seeded with $STOCK each (one "
       . "$SCARCE), on $primary");
    my $seed_seq = last_seq($N{$primary});
    ok(wait_applied($N{$_}, $seed_seq, 30),
       "$_ holds the seed (seq $seed_seq)") for @fol;

    $front = InvTest->start(conf => front_conf(map { $N{$_}->port }
                                                   @ORDER));
    unlike($front->{conf_text}, qr/^\s*(?:load_module|inventory\w*)\b/m,
           'the front is a plain nginx: no module, no inventory directive');
    my $probe = $front->req(GET => ipath($SKUS[0], $LOCS[0]));
    is($probe->{status}, 200, 'a read through the front');
    diag sprintf "$MODE: cluster up and seeded in %.1f s", time - $t_mode;

    $LOGDIR = tempdir('inventory-failover-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{INVENTORY_KEEP});

    my (@failovers, @problems);
    my $load = parallel_start($CLIENTS, \&client);
    my $t_load = time;
    for my $round (1 .. $ROUNDS) {
        my $victim = $primary;
        my @fol = grep { $_ ne $victim } @ORDER;
        push @problems, "round $round: the followers are not following "
                        . $victim unless wait_followers($victim, @fol);
        rejoined($failovers[-1]) if @failovers;
        sleep_until($t_load + ($round - 1 + 0.3) * $SECONDS);
        my $epoch = health($N{$victim})->{epoch} // -1;

        my %f = (round => $round, victim => $victim);
        if ($auto) {
            # its lead lasts half a ttl at least from now on
            $f{w_at} = time;
            $f{writable} = metric_value($N{$victim},
                                        'inventory_cluster_writable') // 0;
        }

        # the primary dies at once, as its machine would
        $f{kill} = time;
        my @left = $N{$victim}->crash;
        $f{dead} = time;
        push @problems, "round $round: pids @left of $victim still alive"
            if @left;

        push @problems, $auto ? fail_over_automatic(\%f, $epoch, @fol)
                              : fail_over_manual(\%f, $epoch, @fol);
        push @failovers, \%f;
    }
    push @problems, "the end: the followers are not following $primary"
        unless wait_followers($primary, grep { $_ ne $primary } @ORDER);
    rejoined($failovers[-1]) if @failovers;
    sleep_until($t_load + $ROUNDS * $SECONDS);
    my @out = parallel_stop($load, $OP_DEADLINE + 20);
    my $t_stop = time;
    ok(!@problems, "$ROUNDS failover(s): each "
       . ($auto ? 'election' : 'promotion') . ' to epoch + 1, every '
       . 'follower back at the new primary')
        or diag join "\n", @problems;
    ok(!grep({ /^DIED/ } @out), 'every client ran to the end')
        or diag join "\n", @out;
    diag "client $_: $out[$_]" for 0 .. $#out;

    check(\@failovers, $t_load, $t_stop);

    stop_all();
    diag sprintf "$MODE: %.1f s", time - $t_mode;
}

# the front, the followers, the primary, then etcd (no election meanwhile)
sub stop_all {
    $front->stop if $front;
    my $p = $primary // '';
    $N{$_}->stop for (grep { $_ ne $p && $N{$_} } @ORDER),
                     (grep { $_ eq $p && $N{$_} } @ORDER);
    $ETCD->stop_all if $ETCD;
    return;
}

# --- the checks -------------------------------------------------------------
sub check {
    my ($failovers, $t_load, $t_stop) = @_;
    my $auto = $MODE eq 'automatic';

    # the history: every write of every client
    my @ops;
    for my $c (0 .. $CLIENTS - 1) {
        for my $l (split /\n/, slurp("$LOGDIR/client-$c.log") // '') {
            push @ops, eval { decode_json($l) } // { bad => $l };
        }
    }
    ok(!grep({ $_->{bad} } @ops), scalar(@ops) . ' writes recorded');

    # failover times: from the kill to the first 2xx of a write sent once
    # the primary was dead.  Manual: between its death and the promotion
    # there is no primary: no write sent then may be acknowledged before
    # the promotion.  Automatic: the killed primary's lead lasts half a ttl
    # at least from the moment it said it could take writes; no other node
    # may lead before, so no write sent after the kill may be
    # acknowledged before.
    my (@took, @early);
    for my $f (@$failovers) {
        my @after = sort { $a->{t1} <=> $b->{t1} }
                    grep { $_->{st} >= 200 && $_->{st} < 300
                           && $_->{t0} > $f->{dead} } @ops;
        my ($bound, $what) = $auto
            ? ($f->{writable} ? $f->{w_at} + $TTL / 2 : undef,
               "the killed primary's lead could end")
            : ($f->{hup}, 'the promotion');
        push @early, map { sprintf "round %d: %s %s sent +%.3f s, answered "
                           . "%d +%.3f s, before %s at +%.3f s",
                           $f->{round}, $_->{key}, $_->{op},
                           $_->{t0} - $f->{kill}, $_->{st},
                           $_->{t1} - $f->{kill}, $what,
                           $bound - $f->{kill} }
                     grep { defined $bound && $_->{t1} < $bound } @after;
        push @early, "round $f->{round}: $f->{victim} did not say it could "
                     . 'take writes (inventory_cluster_writable) just '
                     . 'before the kill'
            if $auto && !$f->{writable};
        my $first = @after ? $after[0]{t1} : undef;
        push @took, defined $first ? $first - $f->{kill} : undef;
        my $t = defined $first ? sprintf('%.2f', $first - $f->{kill})
                               : 'never';
        if ($auto) {
            diag sprintf 'round %d: %s killed; %s (last_seq %s) elected '
                . 'over %s (%s) at epoch %s: dead +%.2f s, settled +%.2f s, '
                . 'elected +%.2f s, restarted +%.2f s (rejoined with %d '
                . 'snapshot(s)), first 2xx +%s s', $f->{round},
                $f->{victim}, map({ $_ // '?' } @$f{qw(new seq_new other
                                                       seq_other epoch)}),
                map({ $f->{$_} - $f->{kill} } qw(dead settled elected
                                                  restarted)),
                $f->{snapshots} // 0, $t;
        } else {
            diag sprintf 'round %d: %s killed; %s (last_seq %d) promoted '
                . 'over %s (%d): dead +%.2f s, settled +%.2f s, promoted '
                . '+%.2f s, re-pointed +%.2f s, restarted +%.2f s '
                . '(rejoined with %d snapshot(s)), first 2xx +%s s',
                $f->{round}, $f->{victim}, $f->{new}, $f->{seq_new},
                $f->{other}, $f->{seq_other},
                map({ $f->{$_} - $f->{kill} } qw(dead settled promoted
                                                  repointed restarted)),
                $f->{snapshots} // 0, $t;
        }
    }
    ok(!@early, $auto ? 'no write acknowledged while the killed primary '
                        . 'could still lead'
                      : 'no write acknowledged while there was no primary')
        or diag join "\n", @early[0 .. ($#early > 10 ? 10 : $#early)];
    ok(!grep({ !defined } @took),
       'writes succeed again after every failover');
    if (my @t = sort { $a <=> $b } grep { defined } @took) {
        diag sprintf "$MODE failover, kill to the first 2xx through the "
            . 'front: p50 %.2f s, max %.2f s (%d failovers)', $t[$#t / 2],
            $t[-1], scalar @t;
    }

    # writes left undecided are sent again with their key, to the front,
    # until decided: afterwards every write is applied or refused
    my @undecided = grep { !$_->{st} } @ops;
    for my $op (@undecided) {
        $op->{resolved} = 1;
        send_op($front, $op, time + 30);
    }
    ok(!grep({ !$_->{st} } @ops), scalar(@undecided) . ' writes undecided '
       . 'at the deadline, each decided by a retry with its key')
        or diag join "\n", map { "$_->{key} $_->{op}: last $_->{last}" }
                           grep { !$_->{st} } @ops;

    # the answers a client may get: 201/200, or a reservation or transfer
    # refused for want of stock.  Anything else (404 of a reservation it
    # made, 409 reservation-not-active of one it ends once, 422) would mean
    # a lost or a doubled write.
    my %res = map { ($_->{id} => $_) }
              grep { $_->{op} eq 'reserve' && $_->{st} == 201 } @ops;

    # 500 Internal Server Error: a node that could neither take the write
    # nor pass it on must say 503 (retry), not 500
    my @e500 = sort { $a->{t500} <=> $b->{t500} } grep { $_->{n500} } @ops;
    ok(!@e500, 'no write answered 500 by the cluster')
        or diag join "\n", map {
            my $op = $_;
            my ($f) = sort { abs($op->{t500} - $a->{kill})
                             <=> abs($op->{t500} - $b->{kill}) }
                      @$failovers, { round => 0, victim => 'none',
                                     kill => $t_load, restarted => $t_load };
            sprintf '%s %s %s: 500 x%d, the first sent +%.3f s after '
                    . 'round %d\'s kill (%s restarted +%.3f s); decided '
                    . '%d', $op->{key}, $op->{op}, $op->{p}, $op->{n500},
                    $op->{t500} - $f->{kill}, $f->{round}, $f->{victim},
                    $f->{restarted} - $f->{kill}, $op->{st}
        } @e500[0 .. ($#e500 > 10 ? 10 : $#e500)];

    my @odd;
    for my $op (@ops) {
        my $want = $op->{op} eq 'reserve' ? 201 : 200;
        next if $op->{st} == $want;
        next if $op->{st} == 409
                && ($op->{code} // '') eq 'insufficient-stock'
                && $op->{op} =~ /^(?:reserve|transfer)\z/;
        push @odd, sprintf "%s %s %s: %d %s (sent +%.3f s)", $op->{key},
                           $op->{op}, $op->{p}, $op->{st},
                           $op->{code} // '', $op->{t0} - $t_load;
    }
    ok(!@odd, 'every write applied (2xx) or refused for want of stock (409)')
        or diag join "\n", @odd[0 .. ($#odd > 20 ? 20 : $#odd)];
    my @noid = grep { $_->{op} eq 'reserve' && $_->{st} == 201
                      && !(defined $_->{id} && $_->{id} =~ RES_ID_RE) } @ops;
    ok(!@noid, 'every acknowledged reservation answered an id');
    is(scalar(keys %res),
       scalar(grep { $_->{op} eq 'reserve' && $_->{st} == 201 } @ops),
       'no two acknowledged reservations share an id');
    my %by = (reserve => 0, commit => 0, release => 0, transfer => 0);
    $by{ $_->{op} }++ for grep { $_->{st} >= 200 && $_->{st} < 300 } @ops;
    diag sprintf '%d writes in %.1f s: acknowledged %s; %d refused (stock); '
        . '%d needed retries', scalar @ops, $t_stop - $t_load,
        join(', ', map { "$by{$_} ${_}s" } sort keys %by),
        scalar(grep { $_->{st} == 409 } @ops),
        scalar(grep { $_->{tries} > 1 } @ops);

    my $P = $N{$primary};
    my @F = map { $N{$_} } grep { $_ ne $primary } @ORDER;

    # replays: a sample of decided writes, sent again (a refusal is decided
    # against the store and acknowledged as a 2xx is: its stored answer is
    # replayed too)
    {
        my @ok = grep { $_->{st} >= 200 && $_->{st} < 300 } @ops;
        my @no = grep { $_->{st} >= 400 } @ops;
        my @sample = grep { defined } (shuffle @ok)[0 .. 59],
                                      (shuffle @no)[0 .. 19];
        my $before = last_seq($P);
        my @p;
        for my $op (@sample) {
            my $r = $front->req($op->{m} => $op->{p},
                (defined $op->{j} ? (json => $op->{j}) : ()),
                headers => { 'Idempotency-Key' => $op->{key} });
            push @p, "$op->{key} $op->{op}: $r->{status}, first $op->{st}"
                unless $r->{status} == $op->{st};
            push @p, "$op->{key} $op->{op}: not Idempotent-Replayed"
                unless InvTest::replayed($r);
            push @p, "$op->{key} $op->{op}: another body:\n  $r->{body}\n"
                     . "  first: $op->{b}"
                unless $r->{body} eq $op->{b};
        }
        ok(!@p, scalar(@sample) . ' decided writes sent again with their '
           . 'key: replayed, the same status and body')
            or diag join "\n", @p[0 .. ($#p > 20 ? 20 : $#p)];
        is(last_seq($P), $before, '... and nothing appended');
    }

    # the final primary: one promotion a failover, no other
    my $hp = health($P);
    is($hp->{role}, 'primary', "the final primary $primary: role primary");
    is($hp->{epoch}, $EPOCH0 + $ROUNDS, "... at epoch "
       . ($EPOCH0 + $ROUNDS) . " (the first primary's $EPOCH0 + $ROUNDS)");

    my ($feed, $fp) = feed_pages($P, 0, 1000);
    my $N = last_seq($P);
    ok(!@$fp && @$feed == $N, "the feed is seqs 1..$N, no gap")
        or diag join "\n", @$fp[0 .. ($#$fp > 10 ? 10 : $#$fp)];

    # what the feed holds, by reservation and by transfer (reason)
    my (%ev_res, %ev_end, %ev_out, %ev_in, %types, @stray);
    for my $e (@$feed) {
        my $t = $e->{type} // '';
        my $d = $e->{data} // {};
        $types{$t}++;
        if ($t eq 'StockReserved') {
            push @{ $ev_res{ $d->{reservation_id} // '' } }, $e;
        } elsif ($t =~ /^Reservation(Committed|Released|Expired)\z/) {
            push @{ $ev_end{ $d->{reservation_id} // '' } }, $e;
        } elsif ($t eq 'StockTransferredOut') {
            push @{ $ev_out{ $d->{reason} // '' } }, $e;
        } elsif ($t eq 'StockTransferredIn') {
            push @{ $ev_in{ $d->{reason} // '' } }, $e;
        } elsif ($t ne 'StockCounted') {
            push @stray, "seq $e->{seq}: $t";
        }
    }
    is($types{StockCounted} // 0, scalar @ITEMS,
       'StockCounted: the seed only, once an item');
    ok(!@stray, 'no other kind of event (no adjustment, no LowStockDetected)')
        or diag join "\n", @stray[0 .. ($#stray > 10 ? 10 : $#stray)];

    # The rule, from what the API shows: every write is decided now,
    # applied (2xx) or refused (409).  A reservation's StockReserved names
    # its id, and the reservation its key (reference); a transfer's two
    # events name its key (reason); a commit's or release's event names the
    # reservation, which ends once.  So the feed holds exactly: one
    # StockReserved per applied reservation, with the id, item and quantity
    # answered; one ReservationCommitted or ReservationReleased per applied
    # commit or release, on its reservation; one StockTransferredOut and
    # one StockTransferredIn per applied transfer, with its key; and
    # nothing else (no event of a refused write, none of a key twice).  A
    # missing event is an acknowledged write lost; one more, a write
    # applied twice or unasked.
    my (@lost, @twice, @extra);
    my %ended;      # reservation id => the acknowledged end (commit/release)
    for my $op (grep { $_->{op} =~ /^(?:commit|release)\z/
                       && $_->{st} == 200 } @ops)
    {
        push @twice, "$op->{id}: ended by two acknowledged writes"
            if $ended{ $op->{id} };
        $ended{ $op->{id} } = $op;
    }
    for my $id (sort keys %res) {
        my $op = $res{$id};
        my $ev = $ev_res{$id} // [];
        if (!@$ev) {
            push @lost, "reservation $id ($op->{key}): no StockReserved";
        } elsif (@$ev > 1) {
            push @twice, "reservation $id ($op->{key}): " . @$ev
                         . ' StockReserved events';
        } elsif ("$ev->[0]{sku}/$ev->[0]{location}/$ev->[0]{data}{quantity}"
                 ne "$op->{sku}/$op->{loc}/$op->{q}")
        {
            push @lost, "reservation $id ($op->{key}): StockReserved of "
                        . "$ev->[0]{sku}/$ev->[0]{location} "
                        . "$ev->[0]{data}{quantity}, acknowledged "
                        . "$op->{sku}/$op->{loc} $op->{q}";
        }
        my @end = map { $_->{type} } @{ $ev_end{$id} // [] };
        my $want = $ended{$id}
            ? ($ended{$id}{op} eq 'commit' ? 'ReservationCommitted'
                                           : 'ReservationReleased')
            : undef;
        if (defined $want) {
            push @lost, "reservation $id: acknowledged $want, the feed has "
                        . "(@end)" unless "@end" eq $want;
        } else {
            push @extra, "reservation $id: ended (@end) by no acknowledged "
                         . 'write'
                unless !@end || "@end" eq 'ReservationExpired';
        }
    }
    # a reservation no client was answered: a second one of a client's key
    # (its reference) is a write applied twice; else a write applied
    # unasked
    my %key_op = map { ($_->{key} => $_) } @ops;
    for my $id (grep { !$res{$_} } sort keys %ev_res) {
        my $j = $P->req(GET => "/v1/reservations/$id")->{json} // {};
        my $ref = $j->{reference} // '';
        my $op = $key_op{$ref};
        if ($op && $op->{op} eq 'reserve' && $op->{st} == 201) {
            push @twice, "reservation $id: a second one of $ref (answered "
                         . "$op->{id})";
        } else {
            push @extra, "StockReserved of $id (seq $ev_res{$id}[0]{seq}, "
                         . "reference '$ref'): no acknowledged reservation";
        }
    }
    push @extra, map { "an end of $_: no acknowledged reservation" }
                 grep { !$res{$_} } sort keys %ev_end;
    push @lost, map { "$_: acknowledged end of an unknown reservation" }
                grep { !$res{$_} } sort keys %ended;

    my %xfer = map { ($_->{key} => $_) } grep { $_->{op} eq 'transfer' }
               @ops;
    for my $key (sort keys %xfer) {
        my $op = $xfer{$key};
        my @o = @{ $ev_out{$key} // [] };
        my @i = @{ $ev_in{$key} // [] };
        if ($op->{st} != 200) {
            push @extra, "transfer $key, refused ($op->{st}): " . @o
                         . ' out, ' . @i . ' in events' if @o || @i;
            next;
        }
        if (@o != 1 || @i != 1) {
            push @{ @o + @i < 2 ? \@lost : \@twice },
                "transfer $key: " . @o . ' out, ' . @i . ' in events';
            next;
        }
        my $got = "$o[0]{sku}/$o[0]{location}->$i[0]{sku}/$i[0]{location} "
                  . "$o[0]{data}{quantity}/$i[0]{data}{quantity}";
        my $want = "$op->{sku}/$op->{from}->$op->{sku}/$op->{to} "
                   . "$op->{q}/$op->{q}";
        push @lost, "transfer $key: events $got, acknowledged $want"
            unless $got eq $want;
    }
    push @extra, map { "transfer events with reason '$_': no client's "
                       . 'write' }
                 grep { !$xfer{$_} } sort keys(%ev_out), sort keys(%ev_in);

    my $n_res = grep { $_->{op} eq 'reserve' && $_->{st} == 201 } @ops;
    my $n_xfer = grep { $_->{op} eq 'transfer' && $_->{st} == 200 } @ops;
    ok(!@lost, "no acknowledged write lost: each of the $n_res "
       . 'reservations, ' . scalar(keys %ended) . " ends and $n_xfer "
       . 'transfers is in the feed')
        or diag join "\n", @lost[0 .. ($#lost > 20 ? 20 : $#lost)];
    ok(!@twice, 'no write applied twice: one StockReserved a reservation, '
       . 'one pair of transfer events a key')
        or diag join "\n", @twice[0 .. ($#twice > 20 ? 20 : $#twice)];
    ok(!@extra, 'nothing applied that no client had acknowledged')
        or diag join "\n", @extra[0 .. ($#extra > 20 ? 20 : $#extra)];
    is(join(' ', map { $types{$_} // 0 } qw(StockReserved
                                             ReservationCommitted
                                             ReservationReleased
                                             StockTransferredOut)),
       join(' ', $n_res,
            scalar(grep { $_->{op} eq 'commit' } values %ended),
            scalar(grep { $_->{op} eq 'release' } values %ended), $n_xfer),
       'events counted: reservations, commits, releases, transfers, as '
       . 'many as acknowledged keys');

    # every acknowledged reservation, read back, in the state its writes
    # imply
    {
        my @ids = sort keys %res;
        my @got = parallel(4, sub {
            my ($i) = @_;
            my @p;
            for my $k (grep { $_ % 4 == $i } 0 .. $#ids) {
                my $id = $ids[$k];
                my $op = $res{$id};
                my $r = $P->req(GET => "/v1/reservations/$id");
                my $j = $r->{json};
                if ($r->{status} != 200 || ref $j ne 'HASH') {
                    push @p, "$id ($op->{key}): GET $r->{status}";
                    next;
                }
                my $want = $ended{$id} ? ($ended{$id}{op} eq 'commit'
                                          ? 'committed' : 'released')
                                       : 'active|expired';
                my $lines = join ' ', map { "$_->{sku}/$_->{location}="
                                            . "$_->{quantity}" }
                                      @{ $j->{lines} // [] };
                push @p, "$id ($op->{key}): state $j->{state}, expected "
                         . $want
                    unless $j->{state} =~ /\A(?:$want)\z/;
                push @p, "$id: lines $lines, expected "
                         . "$op->{sku}/$op->{loc}=$op->{q}"
                    unless $lines eq "$op->{sku}/$op->{loc}=$op->{q}";
                push @p, "$id: reference " . ($j->{reference} // 'null')
                         . ", expected $op->{key}"
                    unless ($j->{reference} // '') eq $op->{key};
            }
            return join "\n", @p;
        });
        my @p = grep { length } map { split /\n/ } @got;
        ok(!@p, scalar(@ids) . ' acknowledged reservations read back, each '
           . 'in the state its acknowledged writes imply')
            or diag join "\n", @p[0 .. ($#p > 20 ? 20 : $#p)];
    }

    # stock: each item as the acknowledged writes alone make it
    {
        my (%on_hand, %reserved, %committed);
        %on_hand = %SEEDED;
        $reserved{$_} = 0 for @ITEMS;
        for my $op (values %res) {
            my $it = "$op->{sku}/$op->{loc}";
            my $end = $ended{ $op->{id} };
            if (!$end) {
                $reserved{$it} += $op->{q};
            } elsif ($end->{op} eq 'commit') {
                $on_hand{$it} -= $op->{q};
                $committed{ $op->{sku} } += $op->{q};
            }
        }
        for my $op (grep { $_->{op} eq 'transfer' && $_->{st} == 200 }
                    @ops)
        {
            $on_hand{"$op->{sku}/$op->{from}"} -= $op->{q};
            $on_hand{"$op->{sku}/$op->{to}"} += $op->{q};
        }
        my (@p, %sum);
        for my $it (@ITEMS) {
            my $j = $P->req(GET => "/v1/inventory/$it")->{json} // {};
            my ($sku) = split m{/}, $it;
            $sum{$sku} += $j->{on_hand} // 0;
            push @p, "$it: on_hand/reserved " . ($j->{on_hand} // '?') . '/'
                     . ($j->{reserved} // '?') . ", the acknowledged writes "
                     . "make it $on_hand{$it}/$reserved{$it}"
                unless ($j->{on_hand} // -1) == $on_hand{$it}
                       && ($j->{reserved} // -1) == $reserved{$it};
        }
        ok(!@p, 'every item: on_hand and reserved exactly as the '
           . 'acknowledged writes make them') or diag join "\n", @p;
        my %seeded;
        $seeded{ (split m{/})[0] } += $SEEDED{$_} for @ITEMS;
        my @c = grep { $sum{$_} != $seeded{$_} - ($committed{$_} // 0) }
                @SKUS;
        ok(!@c, 'per SKU, the sum of on_hand is the seed minus the '
           . 'committed quantities') or diag join "\n", map {
                "$_: $sum{$_}, expected $seeded{$_}"
                . ' - ' . ($committed{$_} // 0) } @c;
    }

    # the followers: the same bytes
    for my $f (grep { $_ ne $primary } @ORDER) {
        ok(wait_applied($N{$f}, $N, 30), "$f reaches the primary's seq $N");
        my $h = health($N{$f});
        is(($h->{role} // 'null') . ' ' . ($h->{epoch} // 'null'),
           "follower $hp->{epoch}", "$f: a follower at epoch $hp->{epoch}");
    }
    is(last_seq($P), $N, 'the primary appended nothing meanwhile');
    same_store_ok([ map { $_->datadir } $P, @F ],
                  "the final primary $primary and its followers");
}

for my $mode (@MODES) {
    subtest "$mode failover" => sub {
        plan skip_all => 'etcd is not installed (make deps)'
            if $mode eq 'automatic' && !which('etcd');
        run_mode($mode);
        done_testing;
    };
}
diag sprintf 'total %.1f s', time - $T0;

done_testing;
