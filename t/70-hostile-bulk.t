#!/usr/bin/perl
# Hostile input on the routes of many items (t/70-hostile.t does the
# others): POST /v1/batch and POST /v1/inventory/query.
#
# * Every body t/70-hostile.t sends every write route (hostile_bodies:
#   malformed, truncated, nested, non-UTF-8, NUL, overflow), as JSON and
#   as text/plain: a 4xx problem.
# * Their own: changes/items missing or not an array, empty, 251/501 of
#   them, entries of the wrong type, unknown members, duplicate members,
#   nested values, bad JSON numbers, atomic not a bool, the batch's reason
#   and reference; one bad change in a batch of 250 for every member a
#   change has (op, sku, location, if_version, and each member of a count,
#   an adjustment and a move: wrong type, nested, 1e3, 1.0, -0, out of
#   range, bad characters, too long, unknown), atomic true, false or left
#   out: 400 naming exactly changes[i].member (api.md: a bad change is 400
#   and nothing is written, atomic or not); one bad item among 500 the
#   same way.  Bodies of exactly 512 KiB (taken) and one byte more (400),
#   with a Content-Length and chunked; over client_max_body_size: nginx's
#   413.  A valid batch with a bad Idempotency-Key or Content-Type;
#   Inventory-Min-Seq of a query; truncated bodies; hostile paths and
#   query strings near both routes, with every method.
# * Refused by the store: one change of 250 that is 404, 409 or 412:
#   atomic, the problem of its kind naming its index, nothing written;
#   not atomic, 200 with its problem in its place and the 249 others
#   applied.
#
# After every refused request the store is unchanged: inventory-admin
# dump --all byte for byte and the feed's last seq; the queries, valid
# ones too, never change it.  No worker dies (same pids), every answer a
# 4xx problem+json.
use strict;
use warnings;
use Test::More;
use InvTest qw(hostile_bodies hostile_problems json_object problem_problems
               problem_ok admin_run last_seq json_type header
               unpaired_surrogates);

my $n = InvTest->start(http_extra => 'client_max_body_size 1m; '
                       . 'client_body_timeout 2s;');
my $BATCH = '/v1/batch';
my $QUERY = '/v1/inventory/query';
my $MAX = 512 * 1024;

# the items every change and query aims at: B-000 .. B-249 at w, 50 each
my @B = map { sprintf 'B-%03d', $_ } 0 .. 249;
is($n->req(POST => $BATCH, json => { changes => [
       map { { op => 'count', sku => $_, location => 'w', on_hand => 50 } }
       @B ] })->{status}, 200, 'seed: 250 items');

# post($path, $body, %headers): a raw POST, application/json by default
sub post {
    my ($path, $body, %h) = @_;
    return $n->req(POST => $path, body => $body, raw => 1,
                   headers => { 'Content-Type' => 'application/json', %h });
}

# the store as inventory-admin dump --all prints it, and the last seq
sub store {
    my ($rc, $out, $err) = admin_run('dump', '--all', $n->datadir);
    die "inventory-admin dump --all: exit $rc: $err" if $rc;
    return { dump => $out, seq => last_seq($n) };
}

# unchanged_ok($before, $name): the store is what it was
sub unchanged_ok {
    my ($before, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $now = store();
    my %was = map { $_ => 1 } split /\n/, $before->{dump};
    my @new = grep { !$was{$_} } split /\n/, $now->{dump};
    ok($now->{dump} eq $before->{dump} && $now->{seq} == $before->{seq},
       "$name: the store unchanged (dump --all, last seq $before->{seq})")
        or diag "last seq $now->{seq}; records new or changed:\n"
                . join("\n", map { substr($_, 0, 200) } @new[0 .. 4]);
}

# expect(\@bad, $label, $r, $status, $code, %opt): what is wrong with the
# answer, added to @bad; $status and $code as problem_problems takes them;
# fields => [...]: the errors must name exactly those fields
sub expect {
    my ($bad, $label, $r, $status, $code, %o) = @_;
    my $fields = delete $o{fields};
    my @p = problem_problems($r, $status, $code, %o);
    if ($fields && !@p) {
        my @f = sort map { ref $_ eq 'HASH' ? $_->{field} // 'null' : '?' }
                @{ $r->{json}{errors} };
        my @w = sort @$fields;
        push @p, 'fields (' . join(', ', map { s/\x00/\\0/gr } @f)
                 . '), expected (' . join(', ', map { s/\x00/\\0/gr } @w)
                 . ')'
            unless join("\n", @f) eq join("\n", @w);
    }
    push @$bad, substr($label =~ s/[^ -~]/?/gr, 0, 120) . ": "
                . join('; ', @p) if @p;
}

my @workers = sort { $a <=> $b } $n->worker_pids;
my $before = store();

# ==========================================================================
# the bodies every write route gets
# ==========================================================================

{
    my ($count, $bad) = hostile_problems($n, [ [ POST => $BATCH ],
                                               [ POST => $QUERY ] ],
                                         [ hostile_bodies() ]);
    is_deeply($bad, {}, "$count hostile bodies: every one a 4xx problem")
        or diag explain $bad;
    unchanged_ok($before, 'the hostile bodies');
}

# ==========================================================================
# values that no member takes (JSON texts)
# ==========================================================================

my $LONG = 'x' x 5000;
my @NOT_ID = ('""', '"a b"', '"a/b"', '"../etc"', '"a%2Fb"', '"a\u0000b"',
              '"\u0000"', '"a\nb"', '"a\tb"', '"a?b"', '"a#b"', '"a*b"',
              '"caf\u00e9"', qq{"caf\xc3\xa9"}, '"' . ('x' x 65) . '"',
              qq{"$LONG"}, '5', '0', 'null', 'true', '[]', '{}',
              '["B-000"]', '{"sku":"B-000"}', '[[["B-000"]]]');
my @NOT_OP = ('"Count"', '"COUNT"', '"count "', '" count"', '""', '"put"',
              '"adjustment"', '"moves"', '"transfer"', '"reserve"',
              '"batch"', '"count\u0000"', '"co\u0000unt"', '1', '0', 'null',
              'true', '[]', '{}', '["count"]', '{"count":1}', qq{"$LONG"},
              '"\u00e9"');
my @NOT_INT = ('1.5', '1.0', '1e3', '1E0', '-1e0', '"1"', '""', 'null',
               'true', 'false', '[]', '{}', '[1]', '{"v":1}',
               '18446744073709551616', '99999999999999999999999999',
               '-9223372036854775809', '1e400', '-1e400', '1e-400');
# + the bounds of each
my @NOT_QTY = (@NOT_INT, '-1', '9007199254740992');             # 0..2^53-1
my @NOT_VERSION = (@NOT_INT, '0', '-0', '-1', '9007199254740992');
my @NOT_DELTA = (@NOT_INT, '0', '-0', '1000000001', '-1000000001');
my @NOT_MOVED = (@NOT_INT, '0', '-0', '-1', '1000000001');
my @NOT_STATE = ('""', '"Available"', '"lost"', '"available "',
                 '"damaged\u0000"', '"incoming\u0000x"',
                 '"quality-control"', '1', 'null', 'true', '[]', '{}',
                 '["available"]', '{"available":1}', qq{"$LONG"},
                 '"\u00e9"');
my @NOT_REASON = ('"' . ('x' x 257) . '"', '5', 'null', 'true', '[]', '{}',
                  '["a"]');
my @NOT_REF = ('""', '" "', '"a b"', '"a\tb"', '"a\u0000b"', '"\u007f"',
               '"x\u0080"', '"' . ('x' x 256) . '"', '"caf\u00e9"', '5',
               'null', 'true', '[]', '{}', '["po:1"]');
# not JSON: the body is what is wrong
my @NOT_JSON = ('01', 'NaN', '0x10', '+1', '.5', '1.', '-', 'tru', "'x'",
                qq{"\x01"}, qq{"\xff"}, "\"a\x00b\"");

# ==========================================================================
# POST /v1/batch
# ==========================================================================

# a valid change of each op, every member it may have (if_version aside:
# the versions change below); each would write
my %CHANGE = (
    count  => [ on_hand => '77', min_level => '1', safety_stock => '1',
                backorder_limit => '1' ],
    adjust => [ delta => '5', state => '"damaged"' ],
    move   => [ from => '"available"', to => '"quality_control"',
                quantity => '1' ],
);
my @OPS = qw(count adjust move);

# change($i, @members): the JSON text of a change of B-i (its op by i)
# with its members, then @members (a name again replaces, undef removes)
sub change {
    my ($i, @m) = @_;
    my $op = $OPS[ $i % 3 ];
    return json_object([ op => qq{"$op"}, sku => qq{"$B[$i]"},
                         location => '"w"', @{ $CHANGE{$op} },
                         reason => '"r"', reference => '"ref:1"', @m ]);
}

# batch(\%bad, @top): a batch of 250 changes, those of %bad (index =>
# text) in their places, then the members @top
my @GOOD = map { change($_) } 0 .. 249;
sub batch {
    my ($bad, @top) = @_;
    return json_object([ @top, changes => '['
        . join(',', map { $bad->{$_} // $GOOD[$_] } 0 .. 249) . ']' ]);
}

# where a bad change goes, by op: the first, one in the middle, the last
my %AT = (count => [ 0, 138, 249 ], adjust => [ 1, 139, 247 ],
          move => [ 2, 140, 248 ]);
my @ATOMIC = ([ atomic => 'true' ], [ atomic => 'false' ], []);

# [op, member, [values]]: undef among the values leaves the member out
my @fields = (
    (map { [ $_, op => [ @NOT_OP, undef ] ] } @OPS),
    (map { [ $_, sku => [ @NOT_ID, undef ] ] } @OPS),
    (map { [ $_, location => [ @NOT_ID, undef ] ] } @OPS),
    (map { [ $_, if_version => \@NOT_VERSION ] } @OPS),
    (map { [ $_, reason => \@NOT_REASON ] } @OPS),
    (map { [ $_, reference => \@NOT_REF ] } @OPS),
    [ count => on_hand => [ @NOT_QTY, undef ] ],
    (map { [ count => $_ => \@NOT_QTY ] }
     qw(min_level safety_stock backorder_limit)),
    [ adjust => delta => [ @NOT_DELTA, undef ] ],
    [ adjust => state => \@NOT_STATE ],
    [ move => from => [ @NOT_STATE, undef ] ],
    [ move => to => [ @NOT_STATE, '"incoming"', '"available"', undef ] ],
    [ move => quantity => [ @NOT_MOVED, undef ] ],
);
# members of another route, or of none: [op, name as sent]
my @unknown = map { my $op = $_;
                    map { [ $op, $_ ] } 'x', 'lines', 'items', 'changes',
                        'atomic', 'OP', 'op ', 'Sku', 'if-version',
                        'sku\u0000', 'r\u00e9ason', 'ttl_seconds',
                        'transfer' } @OPS;
push @unknown, map { [ count => $_ ] } qw(delta state quantity from);
push @unknown, map { [ adjust => $_ ] } qw(on_hand from quantity min_level);
push @unknown, map { [ move => $_ ] } qw(state delta on_hand safety_stock);

{
    my (@bad, $count);
    my $k = 0;
    my $send = sub {
        my ($i, $text, $field, $what) = @_;
        my $top = $ATOMIC[ $k % 3 ];
        my $r = post($BATCH, batch({ $i => $text }, @$top));
        $count++;
        $k++;
        expect(\@bad, "@$top changes[$i] $what", $r, 400, 'invalid-request',
               fields => [ $field ]);
    };
    for my $f (@fields) {
        my ($op, $m, $values) = @$f;
        for my $v (@$values) {
            my $i = $AT{$op}[ $k % 3 ];
            $send->($i, change($i, $m => $v), "changes[$i].$m",
                    "$m " . ($v // '(none)'));
        }
    }
    for my $u (@unknown) {
        my ($op, $name) = @$u;
        my $i = $AT{$op}[ $k % 3 ];
        my $decoded = $name =~ s/\\u00e9/\x{e9}/r =~ s/\\u0000/\x00/r;
        $send->($i, change($i, $name => '1'), "changes[$i].$decoded",
                "unknown member $name");
    }
    for my $v ('1', '"x"', 'null', 'true', 'false', '[]', '[{}]',
               '["count"]', '[' . change(0) . ']') {
        my $i = (0, 138, 249)[ $k % 3 ];
        $send->($i, $v, "changes[$i]", 'the change ' . substr($v, 0, 40));
    }
    for my $v (@NOT_JSON) {
        my $i = $AT{count}[ $k % 3 ];
        $send->($i, change($i, on_hand => $v), 'body', "on_hand $v");
    }
    for my $m (qw(reason reference sku)) {
        for my $v (unpaired_surrogates()) {
            my $i = $AT{ $OPS[ $k % 3 ] }[ $k % 3 ];
            $send->($i, change($i, $m => $v), 'body', "$m $v");
        }
    }
    is_deeply(\@bad, [], "$count batches of 250 changes, one bad (in each "
              . 'member, with atomic true, false or left out): 400 naming '
              . 'exactly that change\'s member') or diag explain \@bad;
    unchanged_ok($before, 'one bad change of 250');
}

# the batch itself
{
    my @three = @GOOD[0 .. 2];
    my $three = '[' . join(',', @three) . ']';
    my @cases;
    for my $v ('{}', '"x"', '1', 'null', 'true', '[]', '"[]"',
               '{"0":' . $GOOD[0] . '}',
               '[' . join(',', @GOOD, $GOOD[0]) . ']',
               '[' . join(',', ('{}') x 1000) . ']', undef) {
        push @cases, [ json_object([ changes => $v ]), 'changes',
                       'changes ' . substr($v // '(none)', 0, 30) ];
    }
    push @cases, [ json_object([ changes => "[$three]" ]), 'changes[0]',
                   'changes an array of an array' ];
    for my $v ('1', '0', '"true"', '"false"', '""', 'null', '[]', '{}',
               '[true]', '{"atomic":true}') {
        push @cases, [ json_object([ atomic => $v, changes => $three ]),
                       'atomic', "atomic $v" ];
    }
    for my $v (@NOT_REASON) {
        push @cases, [ json_object([ reason => $v, changes => $three ]),
                       'reason', 'the batch\'s reason ' . substr($v, 0, 30) ];
    }
    for my $v (@NOT_REF) {
        push @cases, [ json_object([ reference => $v, changes => $three ]),
                       'reference', "the batch's reference $v" ];
    }
    for my $m ('items', 'lines', 'if_version', 'op', 'sku', 'on_hand',
               'Changes', 'changes ', 'atomic\u0000', 'x') {
        my $f = $m =~ s/\\u0000/\x00/r;
        push @cases, [ json_object([ changes => $three, $m => 'true' ]),
                       $f, "an unknown member $m" ];
    }
    # each of its errors names a bad change, the first 16 of them
    push @cases, [ json_object([ changes => '['
                       . join(',', map { change($_, sku => '"a b"') }
                                   0 .. 249) . ']' ]),
                   [ map { "changes[$_].sku" } 0 .. 15 ],
                   '250 bad changes' ];
    for my $v (@NOT_JSON) {
        push @cases, [ json_object([ atomic => $v, changes => $three ]),
                       'body', "atomic $v" ];
    }
    for my $v (unpaired_surrogates()) {
        push @cases, [ json_object([ reference => $v, changes => $three ]),
                       'body', "the batch's reference $v" ];
    }
    # nested deeper than 8, or more than 4096 values
    push @cases,
        [ json_object([ changes => ('[' x 20) . (']' x 20) ]), 'body',
          'changes nested 20 deep' ],
        [ json_object([ changes => '[' . change(0, sku => ('{"a":' x 6)
                                               . '1' . ('}' x 6)) . ']' ]),
          'body', 'a sku nested 6 deep' ],
        [ json_object([ changes => '[' . change(0, x => '['
                                  . join(',', (1) x 4100) . ']') . ']' ]),
          'body', 'a change of 4100 values' ],
        [ json_object([ changes => '[' . join(',', map {
                            change($_, reason => '["' . ('a' x 50) . '"'
                                   . (',1' x 20) . ']') } 0 .. 249) . ']' ]),
          'body', '250 changes with arrays of 21 values' ];
    # a member twice
    push @cases,
        [ '{"changes":' . $three . ',"changes":' . $three . '}', 'changes',
          'changes twice' ],
        [ '{"atomic":true,"changes":' . $three . ',"atomic":false}',
          'atomic', 'atomic twice' ],
        [ '{"reason":"a","changes":' . $three . ',"reason":"a"}', 'reason',
          'reason twice' ],
        (map { my $m = $_;
               [ '{"changes":[' . change(0, if_version => '1')
                                  =~ s/\}\z/,"$m":1}/r . ']}', $m,
                 "$m twice in a change" ] }
         qw(op sku location on_hand reason if_version));

    my @bad;
    my $k = 0;
    for my $c (@cases) {
        my ($body, $field, $what) = @$c;
        my $r = post($BATCH, $body);
        expect(\@bad, "$what ($k)", $r, 400, 'invalid-request',
               fields => ref $field ? $field : [ $field ]);
        $k++;
    }
    is_deeply(\@bad, [], scalar(@cases) . ' bad batches (changes, atomic, '
              . 'reason, reference, unknown and duplicate members, nesting, '
              . 'not JSON): 400 naming the member')
        or diag explain \@bad;
    unchanged_ok($before, 'the bad batches');
}

# the valid batch each of the bad ones came from passes: atomic, one
# change of another version refuses it whole (nothing written)
{
    my $i = 137;
    my $ok = batch({ $i => change($i, if_version => '999') });
    my $r = post($BATCH, $ok);
    problem_ok($r, 412, 'version-mismatch', 'the valid batch of 250 '
               . 'changes with an if_version of another version: 412');
    is_deeply([ map { "$_->{index}:$_->{code}" }
                @{ ($r->{json} // {})->{errors} // [] } ],
              [ "$i:version-mismatch" ], '... naming that change');

    # the largest: every change with a reason of 256 bytes and a
    # reference of 255 characters (about 150 KB)
    my $big = json_object([ reason => '"' . ('y' x 256) . '"',
                            changes => '[' . join(',', map {
            change($_, reason => '"' . ('a' x 256) . '"',
                   reference => '"' . ('r' x 255) . '"',
                   $_ == 249 ? (if_version => '999') : ()) } 0 .. 249)
                            . ']' ]);
    problem_ok(post($BATCH, $big), 412, 'version-mismatch',
               'the largest batch (' . length($big) . ' bytes), its last '
               . 'change of another version: 412');

    # at the limit and one byte over it, with a Content-Length and chunked
    my $at = $ok . (' ' x ($MAX - length $ok));
    problem_ok(post($BATCH, $at), 412, 'version-mismatch',
               "a batch of exactly $MAX bytes is read: 412");
    problem_ok(post($BATCH, $at . ' '), 400, 'invalid-request',
               'one byte more: 400', field => 'body');
    problem_ok(post($BATCH, chunked($at), 'Transfer-Encoding' => 'chunked'),
               412, 'version-mismatch', '... chunked, at the limit: 412');
    problem_ok(post($BATCH, chunked("$at "), 'Transfer-Encoding' => 'chunked'),
               400, 'invalid-request', '... chunked, one byte more: 400',
               field => 'body');
    my $r2 = post($BATCH, $at . (' ' x (1024 * 1024 + 1 - $MAX)));
    is($r2->{status}, 413, 'over client_max_body_size: nginx\'s 413');
    unchanged_ok($before, 'valid batches refused whole');
}

# chunked($body): the body in chunks of 64 KiB
sub chunked {
    return join('', map { sprintf("%x\r\n", length $_) . "$_\r\n" }
                    unpack('(a65536)*', $_[0])) . "0\r\n\r\n";
}

# a valid batch that would write, with a bad header: refused
{
    my $body = batch({});
    my @bad;
    for my $h ([ 'Idempotency-Key' => 'k' x 256 ],
               [ 'Idempotency-Key' => "a\x7fb" ],
               [ 'Idempotency-Key' => 'a b' ],
               [ 'Idempotency-Key' => '' ],
               [ 'Idempotency-Key' => "caf\xc3\xa9" ]) {
        expect(\@bad, "$h->[0] $h->[1]",
               post($BATCH, $body, @$h), 400, 'invalid-request',
               fields => [ $h->[0] ]);
    }
    for my $ct ('text/plain', 'application/jsonx', 'application/json-seq',
                'text/json', 'application/x-www-form-urlencoded',
                'multipart/form-data; boundary=x', 'application/problem+json',
                "application/json\x01", 'application /json', '') {
        expect(\@bad, "Content-Type $ct",
               post($BATCH, $body, 'Content-Type' => $ct), 415,
               'unsupported-media-type');
    }
    expect(\@bad, 'no Content-Type',
           $n->req(POST => $BATCH, body => $body, raw => 1), 415,
           'unsupported-media-type');
    is_deeply(\@bad, [], 'a valid batch with a bad Idempotency-Key (400) or '
              . 'Content-Type (415): refused') or diag explain \@bad;
    my $r = post($BATCH, $body, 'Content-Length' => 99999999999999999999);
    ok($r->{status} >= 400 && $r->{status} < 500,
       "a Content-Length of 20 digits: $r->{status}");
    unchanged_ok($before, 'valid batches with a bad header');
}

# ==========================================================================
# POST /v1/inventory/query: never a write
# ==========================================================================

# item($i, @members): the JSON text of an item of a query
sub item {
    my ($i, @m) = @_;
    return json_object([ sku => qq{"$B[$i % 250]"}, location => '"w"', @m ]);
}
sub query {
    my ($bad, @top) = @_;
    return json_object([ @top, items => '['
        . join(',', map { $bad->{$_} // item($_) } 0 .. 499) . ']' ]);
}

{
    my (@bad, $count);
    my $k = 0;
    my $send = sub {
        my ($body, $fields, $what) = @_;
        $count++;
        expect(\@bad, "$what ($k)", post($QUERY, $body), 400,
               'invalid-request', fields => $fields);
    };
    for my $m (qw(sku location)) {
        for my $v (@NOT_ID, undef) {
            my $i = (0, 250, 499)[ $k++ % 3 ];
            $send->(query({ $i => item($i, $m => $v) }), [ "items[$i].$m" ],
                    "items[$i].$m " . ($v // '(none)'));
        }
    }
    for my $name ('quantity', 'op', 'x', 'items', 'Sku', 'location ',
                  'sku\u0000', 'if_version') {
        my $i = (0, 250, 499)[ $k++ % 3 ];
        my $f = $name =~ s/\\u0000/\x00/r;
        $send->(query({ $i => item($i, $name => '"w"') }), [ "items[$i].$f" ],
                "items[$i] with $name");
    }
    for my $v ('1', '"x"', 'null', 'true', '[]', '[' . item(0) . ']') {
        my $i = (0, 250, 499)[ $k++ % 3 ];
        $send->(query({ $i => $v }), [ "items[$i]" ], "items[$i] $v");
    }
    $send->(query({ 7 => '{}' }), [ 'items[7].sku', 'items[7].location' ],
            'an item {}');
    my $one = '[' . item(0) . ']';
    for my $v ('{}', '"x"', '1', 'null', 'true', '[]', '{"0":' . item(0) . '}',
               '[' . join(',', map { item($_) } 0 .. 500) . ']', undef) {
        $send->(json_object([ items => $v ]), [ 'items' ],
                'items ' . substr($v // '(none)', 0, 30));
    }
    for my $m ('changes', 'atomic', 'Items', 'items ', 'limit', 'reason',
               'items\u0000') {
        my $f = $m =~ s/\\u0000/\x00/r;
        $send->(json_object([ items => $one, $m => '1' ]), [ $f ],
                "an unknown member $m");
    }
    $send->('{"items":' . $one . ',"items":' . $one . '}', [ 'items' ],
            'items twice');
    for my $m (qw(sku location)) {
        $send->('{"items":[' . item(0) =~ s/\}\z/,"$m":"w"}/r . ']}', [ $m ],
                "$m twice in an item");
    }
    $send->('{"items":[' . item(0, sku => ('{"a":' x 6) . '1' . ('}' x 6))
            . ']}', [ 'body' ], 'a sku nested 6 deep');
    $send->(json_object([ items => '[' . join(',', ('1') x 4100) . ']' ]),
            [ 'body' ], 'items of 4100 values');
    for my $v (@NOT_JSON, unpaired_surrogates()) {
        $send->(query({ 3 => item(3, location => $v) }), [ 'body' ],
                "a location $v");
    }
    is_deeply(\@bad, [], "$count bad queries (one bad item of 500 in each "
              . 'member, items, unknown and duplicate members, nesting, '
              . 'not JSON): 400 naming the member') or diag explain \@bad;

    # valid ones: a read
    my $q = query({});
    my $r = post($QUERY, $q);
    is($r->{status}, 200, 'the valid query of 500 items: 200');
    is(scalar @{ ($r->{json} // {})->{items} // [] }, 500, '... 500 found');
    my $at = $q . (' ' x ($MAX - length $q));
    is(post($QUERY, $at)->{status}, 200,
       "a query of exactly $MAX bytes: 200");
    problem_ok(post($QUERY, "$at "), 400, 'invalid-request',
               'one byte more: 400', field => 'body');
    is(post($QUERY, chunked($at), 'Transfer-Encoding' => 'chunked')
           ->{status}, 200, '... chunked, at the limit: 200');
    problem_ok(post($QUERY, chunked("$at "), 'Transfer-Encoding' => 'chunked'),
               400, 'invalid-request', '... chunked, one byte more: 400',
               field => 'body');

    @bad = ();
    for my $v ('-1', '1.0', '1e3', '', ' ', 'x', '18446744073709551616',
               '9007199254740992', '0x10', '+1', "1\x01", '1 2', '1,2') {
        expect(\@bad, "Inventory-Min-Seq '$v'",
               post($QUERY, $q, 'Inventory-Min-Seq' => $v), 400,
               'invalid-request', fields => [ 'Inventory-Min-Seq' ]);
    }
    is_deeply(\@bad, [], 'a bad Inventory-Min-Seq on a query: 400')
        or diag explain \@bad;
    unchanged_ok($before, 'the queries, valid and not');
}

# hostile paths and query strings near the two routes, every method, with
# the valid batch refused whole (412) or the valid query (a POST of it may
# be a 200: nginx merges "//"): no 5xx, no write taken
{
    my $refused = batch({ 5 => change(5, if_version => '999') });
    my $q = query({});
    my @pbad;
    for my $p ('/v1/batch/', '/v1/batch/x', '/v1/batch?atomic=false',
               '/v1/batch?changes=1&changes=2', '/v1/batch%00', '/v1/Batch',
               '/v1//batch', '/v1/batch/' . ('a/' x 500), '/v1/batch%2f',
               '/v1/inventory/query/', '/v1/inventory/query/x',
               '/v1/inventory/query?items=' . ('1' x 3000),
               '/v1/inventory/query%00', '/v1/inventory/Query',
               '/v1/inventory//query', '/v1/inventory/query/w/x',
               '/v1/inventory/query/w/moves') {
        for my $m (qw(GET HEAD POST PUT DELETE PATCH OPTIONS)) {
            my $r = $n->raw_req($m, $p,
                body => ($m =~ /^P/ ? ($p =~ /query/ ? $q : $refused)
                                    : undef),
                headers => [ 'Content-Type' => 'application/json' ]);
            push @pbad, "$m " . substr($p, 0, 60) . ": $r->{status}"
                if $r->{status} >= 500
                   || ($m =~ /^(?:PUT|PATCH|DELETE)\z/ && $r->{status} < 400)
                   || ($m eq 'POST' && $p !~ /query/ && $r->{status} < 400);
        }
    }
    is_deeply(\@pbad, [], '17 hostile paths x 7 methods: no 5xx, no write '
              . 'taken') or diag explain \@pbad;
    unchanged_ok($before, 'hostile paths');
}

# truncated bodies: a Content-Length of more than is sent, on both routes
# at once
{
    my @h;
    for my $path ($BATCH, $QUERY) {
        my $a = InvTest::async_req($n, POST => $path, headers => [
            'Content-Type' => 'application/json', 'Content-Length' => 1000 ]);
        syswrite $a->{sock}, '{"changes":[{"op":"count"' if $a->{sock};
        push @h, $a;
    }
    InvTest::async_wait(\@h, 30, close => 1);
    for my $a (@h) {
        my $st = $a->{res} ? $a->{res}{status} : 599;
        ok($st == 408 || $st == 400 || $st == 599,
           "$a->{path}: a truncated body: $st, nothing else");
    }
    unchanged_ok($before, 'truncated bodies');
}

# ==========================================================================
# one change of 250 refused by the store
# ==========================================================================

# [status, code, change at $i]: refused whatever the changes before it did
my @KIND = (
    [ 404, 'not-found', sub { json_object([ op => '"adjust"',
          sku => '"NONE-1"', location => '"w"', delta => '-1' ]) } ],
    [ 409, 'insufficient-stock', sub { json_object([ op => '"adjust"',
          sku => qq{"$B[$_[0]]"}, location => '"w"', delta => '-1000000' ])
      } ],
    [ 409, 'insufficient-stock', sub { json_object([ op => '"move"',
          sku => qq{"$B[$_[0]]"}, location => '"w"', from => '"damaged"',
          to => '"available"', quantity => '1000000000' ]) } ],
    [ 412, 'version-mismatch', sub { change($_[0], if_version => '999') } ],
    [ 412, 'version-mismatch', sub { json_object([ op => '"count"',
          sku => '"NONE-2"', location => '"w"', on_hand => '1',
          if_version => '1' ]) } ],
);
# the other changes: counts to $v
sub counts {
    my ($v, %bad) = @_;
    return '[' . join(',', map { $bad{$_} // json_object([ op => '"count"',
        sku => qq{"$B[$_]"}, location => '"w"', on_hand => $v ]) } 0 .. 249)
        . ']';
}

{
    my (@bad, $k);
    for my $x (@KIND) {
        my ($st, $code, $make) = @$x;
        for my $i (0, 131, 249) {
            my $r = post($BATCH, json_object([ ($k++ % 2 ? () :
                                                (atomic => 'true')),
                                             changes => counts(
                                                 60, $i => $make->($i)) ]));
            my @e = map { "$_->{index}:$_->{code}" }
                    @{ ($r->{json} // {})->{errors} // [] };
            expect(\@bad, "$st $code at $i", $r, $st, $code);
            push @bad, "$st $code at $i: errors (@e)"
                unless "@e" eq "$i:$code";
        }
    }
    is_deeply(\@bad, [], 'atomic, one change of 250 refused (404, 409, 412; '
              . 'first, middle, last): its problem naming its index')
        or diag explain \@bad;
    unchanged_ok($before, 'atomic batches refused by the store');
}

# not atomic: the other 249 applied, the refused one in its place
{
    my $v = 61;
    my @want = (50) x 250;
    my (@bad, $applied);
    for my $x (@KIND) {
        my ($st, $code, $make) = @$x;
        my $i = (7, 131, 249)[ $v % 3 ];
        my $seq = last_seq($n);
        my $r = post($BATCH, json_object([ atomic => 'false',
                                          changes => counts($v,
                                              $i => $make->($i)) ]));
        my $res = ($r->{json} // {})->{results} // [];
        push @bad, "$code at $i: status $r->{status}"
            unless $r->{status} == 200 && @$res == 250;
        for my $j (0 .. $#$res) {
            my $x = $res->[$j];
            if ($j == $i) {
                my $p = $x->{problem} // {};
                push @bad, "$code at $i: results[$i] $x->{status} "
                           . ($p->{code} // '')
                    unless $x->{status} == $st && ($p->{code} // '') eq $code
                           && $p->{type} eq "urn:inventory:problem:$code"
                           && json_type($p->{detail}) eq 'string'
                           && !exists $x->{item};
            } elsif ($x->{status} != 200
                     || ($x->{item}{on_hand} // -1) != $v) {
                push @bad, "$code at $i: results[$j] $x->{status}";
            }
        }
        push @bad, "$code at $i: last seq " . last_seq($n)
                   . ', expected ' . ($seq + 249)
            unless last_seq($n) == $seq + 249;
        push @bad, "$code at $i: Inventory-Seq "
                   . (header($r, 'inventory-seq') // 'none')
            unless (header($r, 'inventory-seq') // -1) == $seq + 249;
        $applied += 249;
        $want[$_] = $v for grep { $_ != $i } 0 .. 249;
        $v++;
    }
    is_deeply(\@bad, [], "\"atomic\": false, one change of 250 refused by "
              . 'the store (404, 409, 412): 200, its problem in its place, '
              . "the others applied ($applied events)")
        or diag explain \@bad;
    my $r = post($QUERY, json_object([ items => '['
                                       . join(',', map { item($_) } 0 .. 249)
                                       . ']' ]));
    is_deeply([ map { "$_->{sku} $_->{on_hand} $_->{damaged} "
                      . "$_->{quality_control}" }
                @{ ($r->{json} // {})->{items} // [] } ],
              [ map { "$B[$_] $want[$_] 0 0" } 0 .. 249 ],
              'every item holds what the last batch that counted it '
              . 'counted, nothing else: no refused change was applied');
    is($n->req(GET => '/v1/inventory/NONE-1/w')->{status}, 404,
       'NONE-1 not created');
    is($n->req(GET => '/v1/inventory/NONE-2/w')->{status}, 404,
       'NONE-2 not created');
}

is_deeply([ sort { $a <=> $b } $n->worker_pids ], \@workers,
          'the same workers serve: none died');
is($n->req(GET => '/v1/health')->{status}, 200, 'health is 200');
$n->allow_log(qr/client sent|too large|invalid|timed out/i);
$n->stop;

done_testing;
