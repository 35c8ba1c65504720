# conf/logging.conf, as it stands (placeholders filled in): a JSON access
# log (log_format escape=json) with $inventory_sku, $inventory_location,
# $inventory_event_seq and a map over $inventory_sku.  Every line parses
# with JSON::PP; each request's line (found by its X-Request-Id) holds the
# right SKU, location and family, and the seq of the last event the request
# appended (checked against the store's last_seq and the event feed), null
# when it appended none.
use strict;
use warnings;
use Test::More;
use JSON::PP ();
use Time::HiRes qw(sleep time);
use InvTest qw(json_type);

my $T0 = time;

my $n = InvTest->start(conf => InvTest::example_conf('logging.conf'));
my $LOG = $n->dir . '/access.json';

my $last_seq = 0;       # the store's last seq, as far as this test knows
my @sent;               # every request: { r, expect => {...} }

sub store_last_seq {
    my $r = $n->req(GET => '/v1/health');
    die "health: " . InvTest::show($r) unless $r->{status} == 200;
    push @sent, { r => $r, expect => { sku => '', location => '',
                                       sku_family => 'none',
                                       event_seq => undef } };
    return $r->{json}{store}{last_seq};
}

# send_req($method, $path, %opt): a request whose log line must hold
#   sku, location (default ''), family (default: 'none' without sku),
#   events => N: the request appends N events (0: a read, a failed write
#   or a replay; its event_seq must be null), last_type => the type of
#   the last of them
sub send_req {
    my ($method, $path, %o) = @_;
    my %req;
    $req{json} = $o{json} if exists $o{json};
    $req{headers} = $o{headers} if $o{headers};
    my $r = $n->req($method, $path, %req);
    if (defined $o{status}) {
        is($r->{status}, $o{status}, "$method $path: $o{status}")
            or diag InvTest::show($r);
    }
    my $events = $o{events} // 0;
    my $seq;
    if ($method ne 'GET' && $method ne 'HEAD') {
        my $now = store_last_seq();
        is($now - $last_seq, $events,
           "$method $path appended $events event(s)");
        $seq = $now if $events;
        $last_seq = $now;
    }
    my $sku = $o{sku} // '';
    push @sent, { r => $r, last_type => $o{last_type},
                  expect => { sku => $sku, location => $o{location} // '',
                              sku_family => $o{family}
                                            // ($sku eq '' ? 'none' : '?'),
                              event_seq => $seq } };
    return $r;
}

my %ADJ = (status => 200, events => 1, last_type => 'StockAdjusted');

# --- requests of every kind --------------------------------------------------
# SKU families by prefix: SP- spare-part, RM- raw-material, TEST- synthetic,
# anything else catalog.
send_req(PUT => '/v1/inventory/SP-100/store-7',
         json => { on_hand => 5, min_level => 10 }, status => 201,
         events => 2, last_type => 'LowStockDetected',
         sku => 'SP-100', location => 'store-7', family => 'spare-part');
send_req(GET => '/v1/inventory/SP-100/store-7', status => 200,
         sku => 'SP-100', location => 'store-7', family => 'spare-part');
send_req(HEAD => '/v1/inventory/SP-100/store-7', status => 200,
         sku => 'SP-100', location => 'store-7', family => 'spare-part');
send_req(POST => '/v1/inventory/RM-7/dock:1/adjustments',
         json => { delta => 30 }, %ADJ, status => 201,
         sku => 'RM-7', location => 'dock:1', family => 'raw-material');
send_req(POST => '/v1/inventory/RM-7/dock:1/adjustments',
         json => { delta => 2 }, %ADJ,
         sku => 'RM-7', location => 'dock:1', family => 'raw-material');
send_req(PUT => '/v1/inventory/TEST-probe/x', json => { on_hand => 1 },
         status => 201, events => 1, last_type => 'StockCounted',
         sku => 'TEST-probe', location => 'x', family => 'synthetic');
send_req(PUT => '/v1/inventory/A-1/store-7', json => { on_hand => 10 },
         status => 201, events => 1, last_type => 'StockCounted',
         sku => 'A-1', location => 'store-7', family => 'catalog');
# a SKU that only contains a family's prefix is not of that family
send_req(PUT => '/v1/inventory/XSP-1/store-7', json => { on_hand => 1 },
         status => 201, events => 1, last_type => 'StockCounted',
         sku => 'XSP-1', location => 'store-7', family => 'catalog');
send_req(GET => '/v1/inventory/A-1', status => 200,
         sku => 'A-1', family => 'catalog');
send_req(GET => '/v1/inventory/RM-7/dock:1/events', status => 200,
         sku => 'RM-7', location => 'dock:1', family => 'raw-material');
send_req(POST => '/v1/inventory/A-1/store-7/reservations',
         json => { quantity => 1 }, status => 201, events => 1,
         last_type => 'StockReserved',
         sku => 'A-1', location => 'store-7', family => 'catalog');

# routes without a SKU in the path: the variables are empty
my $r = send_req(POST => '/v1/reservations', status => 201, events => 2,
                 last_type => 'StockReserved',
                 json => { lines => [
                     { sku => 'A-1', location => 'store-7', quantity => 2 },
                     { sku => 'RM-7', location => 'dock:1', quantity => 3 },
                 ] });
my $rid = ref $r->{json} eq 'HASH' ? $r->{json}{id} : 'r_none';
send_req(GET => "/v1/reservations/$rid", status => 200);
send_req(POST => "/v1/reservations/$rid/commit", json => {}, status => 200,
         events => 2, last_type => 'ReservationCommitted');
# a transfer names its SKU in the body: once the body is read (so in the
# log, not yet in limit_req) the variables hold the SKU and "from"
send_req(POST => '/v1/transfers', status => 200, events => 2,
         last_type => 'StockTransferredIn',
         json => { sku => 'RM-7', from => 'dock:1', to => 'dock:2',
                   quantity => 4 },
         sku => 'RM-7', location => 'dock:1', family => 'raw-material');
send_req(GET => '/v1/events?after=0&limit=2', status => 200);
send_req(GET => '/v1/low-stock', status => 200);
send_req(GET => '/v1/nowhere', status => 404);
send_req(GET => '/metrics', status => 200);

# writes that append nothing: event_seq is null
send_req(POST => '/v1/inventory/A-1/store-7/adjustments',
         json => { delta => -1000 }, status => 409,
         sku => 'A-1', location => 'store-7', family => 'catalog');
send_req(PUT => '/v1/inventory/A-1/store-7', json => { on_hand => 'x' },
         status => 400,
         sku => 'A-1', location => 'store-7', family => 'catalog');
send_req(PUT => '/v1/inventory/A-1/store-7', json => { on_hand => 11 },
         headers => { 'If-Match' => '"1"' }, status => 412,
         sku => 'A-1', location => 'store-7', family => 'catalog');
my %idem = (headers => { 'Idempotency-Key' => 'log-test-1' },
            sku => 'SP-100', location => 'store-7', family => 'spare-part');
send_req(POST => '/v1/inventory/SP-100/store-7/adjustments',
         json => { delta => 1 }, %idem, %ADJ);
$r = send_req(POST => '/v1/inventory/SP-100/store-7/adjustments',
              json => { delta => 1 }, %idem, status => 200, events => 0);
is($r->{headers}{'idempotent-replayed'}, 'true',
   'the repeat was a replay') or diag InvTest::show($r);

# identifiers the API rejects are never exposed: empty, not the raw text
send_req(GET => '/v1/inventory/bad%20sku%21/store-7', status => 400,
         location => 'store-7');
send_req(PUT => '/v1/inventory/bad%20sku%21/store-7',
         json => { on_hand => 1 }, status => 400, location => 'store-7');
send_req(GET => '/v1/inventory/A-1/bad%20loc', status => 400,
         sku => 'A-1', family => 'catalog');
send_req(GET => '/v1/inventory/' . ('L' x 65) . '/x', status => 400,
         location => 'x');
# characters JSON must escape, in the path ($uri is decoded)
send_req(GET => '/v1/inventory/a%22b%5Cc/x', status => 400, location => 'x');
send_req(GET => '/v1/inventory/a%01b/x', status => 400, location => 'x');

# --- the log -----------------------------------------------------------------
# A line is written when its request ends, just after the response: wait
# until every request's line is there.
my %want = map { ($_->{r}{headers}{'x-request-id'} // '') => $_ } @sent;
is(scalar(grep { !/^[0-9a-f]{32}\z/ } keys %want), 0,
   'every response carries X-Request-Id (32 hex digits), all different')
    or diag join ' ', keys %want;
is(scalar keys %want, scalar @sent, '... one per request');

my @lines;
my $deadline = time + 15;
while (1) {
    open my $fh, '<', $LOG or die "$LOG: $!";
    @lines = <$fh>;
    close $fh;
    my %seen = map { /"request_id":"([0-9a-f]{32})"/ ? ($1 => 1) : () } @lines;
    last if !grep { !$seen{$_} } keys %want;
    last if time > $deadline;
    sleep 0.1;
}

my $json = JSON::PP->new->utf8;     # strict: no relaxed syntax
my (%by_id, @unparsed);
for my $l (@lines) {
    my $j = eval { $json->decode($l) };
    if (ref $j eq 'HASH') { $by_id{ $j->{request_id} // '' } = $j }
    else                  { push @unparsed, $l }
}
is(scalar @unparsed, 0, 'all ' . scalar(@lines) . ' access log lines parse '
                        . 'as JSON objects')
    or diag "not JSON: @unparsed";

# the fields every line has, with their JSON types
my @FIELDS = qw(event_seq location method remote_addr request_id
                request_time sku sku_family status time uri);
my @shape;
for my $j (values %by_id) {
    my $id = $j->{request_id};
    push @shape, "$id: fields " . join(',', sort keys %$j)
        unless join(',', sort keys %$j) eq join(',', @FIELDS);
    for my $k (qw(location method remote_addr sku sku_family time uri)) {
        push @shape, "$id: $k is " . json_type($j->{$k})
            unless json_type($j->{$k}) eq 'string';
    }
    for my $k (qw(status request_time)) {
        push @shape, "$id: $k is " . json_type($j->{$k})
            unless json_type($j->{$k}) eq 'number';
    }
    my $t = json_type($j->{event_seq});
    push @shape, "$id: event_seq is $t" unless $t eq 'number' || $t eq 'null';
    push @shape, "$id: time '$j->{time}' is not ISO 8601"
        unless ($j->{time} // '')
               =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d\z/;
}
is(scalar @shape, 0, 'every line has the documented fields and types')
    or diag join "\n", @shape[0 .. ($#shape > 20 ? 20 : $#shape)];

# the feed, to check each event_seq names the request's last event
my $feed = $n->req(GET => '/v1/events?after=0&limit=1000');
my %event = map { ($_->{seq} => $_) } @{ $feed->{json}{events} // [] };
is(scalar keys %event, $last_seq, "the feed holds the $last_seq events")
    or diag InvTest::show($feed);

for my $s (@sent) {
    my $r = $s->{r};
    my $id = $r->{headers}{'x-request-id'} // '';
    my $what = "$r->{method} $r->{path} ($r->{status})";
    my $j = $by_id{$id};
    if (!$j) {
        fail("$what: has a log line");
        next;
    }
    my $e = $s->{expect};
    my %got = map { ($_ => $j->{$_}) } qw(sku location sku_family event_seq);
    is_deeply(\%got, $e, "$what: sku, location, family, event_seq")
        or diag 'line: ' . JSON::PP->new->canonical->encode($j);
    is_deeply([@$j{qw(method status remote_addr)}],
              [$r->{method}, $r->{status}, '127.0.0.1'],
              "$what: method, status, client");
    if (defined $e->{event_seq}) {
        my $ev = $event{ $e->{event_seq} } // {};
        is($ev->{type} // 'none', $s->{last_type},
           "$what: event $e->{event_seq} in the feed is its last, "
           . $s->{last_type});
    }
}

# the decoded path, escaped, read back as it was
my ($q) = grep { $_->{r}{path} =~ /a%22b/ } @sent;
is($by_id{ $q->{r}{headers}{'x-request-id'} // '' }{uri},
   '/v1/inventory/a"b\\c/x', 'a quote and a backslash in the path survive '
                             . 'the JSON escaping');
($q) = grep { $_->{r}{path} =~ /a%01b/ } @sent;
is($by_id{ $q->{r}{headers}{'x-request-id'} // '' }{uri},
   "/v1/inventory/a\x01b/x", 'so does a control character');
($q) = grep { $_->{r}{path} =~ /bad%20sku/ } @sent;
is($by_id{ $q->{r}{headers}{'x-request-id'} // '' }{uri},
   '/v1/inventory/bad sku!/store-7', '$uri is the decoded path');

$n->stop;
diag sprintf 'took %.1f s', time - $T0;
done_testing;
