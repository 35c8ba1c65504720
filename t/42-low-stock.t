# GET /v1/low-stock?location=L&limit=N&cursor=C: items with low_stock in
# (location, sku) byte order, as full item objects; default and maximum
# limits; paging edges; the location filter; bad arguments and cursors;
# items entering and leaving (adjustments, PUT, reservations, transfers);
# paging while items change between pages and under concurrent churn: no
# item that stayed low is skipped or repeated, order stays strict.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use MIME::Base64 ();
use InvTest qw(item_ok problem_ok parallel json_type encode_json decode_json);

my $n = InvTest->start(workers => 2);

sub low { $n->req(GET => '/v1/low-stock' . (defined $_[0] ? "?$_[0]" : '')) }
sub key { "$_[0]{location}\0$_[0]{sku}" }      # byte order of (location, sku)
sub name { "$_[0]{location}/$_[0]{sku}" }
sub b64u { MIME::Base64::encode_base64url($_[0]) }

# page_ok($r, $limit, $name): (\@items, $next_cursor) of a well-formed page
sub page {
    my ($r, $limit, $name, $bad) = @_;
    my @p;
    my $j = $r->{json};
    if ($r->{status} != 200 || ref $j ne 'HASH' || ref $j->{items} ne 'ARRAY') {
        push @$bad, "$name: " . InvTest::show($r);
        return ([], undef);
    }
    my @x = grep { !/^(?:items|next_cursor)\z/ } sort keys %$j;
    push @$bad, "$name: unexpected members @x" if @x;
    push @$bad, "$name: no next_cursor member" unless exists $j->{next_cursor};
    my $t = json_type($j->{next_cursor});
    push @$bad, "$name: next_cursor is $t" unless $t eq 'string' || $t eq 'null';
    push @$bad, "$name: " . @{ $j->{items} } . " items over the limit $limit"
        if defined $limit && @{ $j->{items} } > $limit;
    for my $it (@{ $j->{items} }) {
        my @ip = InvTest::item_problems($it, { low_stock => 1 });
        push @$bad, "$name: item " . encode_json($it) . ": @ip" if @ip;
    }
    return ($j->{items}, $j->{next_cursor});
}

# walk($query, $limit, $between): every page from the start, following
# next_cursor; $between->($page_no, \@items_so_far) runs after each page.
# Returns (\@items, \@problems, $pages).
sub walk {
    my ($q, $limit, $between) = @_;
    my (@all, @bad);
    my $cursor;
    my $pages = 0;
    while (1) {
        my $path = join '&', grep { length } ($q // ''),
            (defined $limit ? "limit=$limit" : ()),
            (defined $cursor ? "cursor=$cursor" : ());
        my ($items, $next) = page(low($path), $limit, "page " . ($pages + 1),
                                  \@bad);
        $pages++;
        push @all, @$items;
        push @bad, "page $pages: empty but next_cursor set"
            if !@$items && defined $next;
        push @bad, "page $pages: short (" . @$items . ") but next_cursor set"
            if defined $limit && defined $next && @$items < $limit;
        $between->($pages, \@all) if $between;
        last unless defined $next && !@bad;
        last if $pages > 2000;
        $cursor = $next;
    }
    return (\@all, \@bad, $pages);
}

sub order_problems {
    my ($items) = @_;
    my @p;
    for my $i (1 .. $#$items) {
        push @p, 'order: ' . name($items->[$i]) . ' after '
                 . name($items->[$i - 1])
            unless key($items->[$i - 1]) lt key($items->[$i]);
    }
    return @p;
}

# --- the empty store --------------------------------------------------------
my $r = low();
is($r->{status}, 200, 'empty store: 200');
is($r->{body}, '{"items":[],"next_cursor":null}',
   'empty store: {"items":[],"next_cursor":null}');
is(low('location=s')->{body}, '{"items":[],"next_cursor":null}',
   'empty store, location filter: empty');

# --- setup ----------------------------------------------------------------------
# identifiers chosen for byte order: '-' < '.' < '0-9' < ':' < 'A-Z' < '_' <
# 'a-z', and a location that is a prefix of others ("s" vs "s-1", "s.2", "s1")
my @LOCS = qw(S s s-1 s.2 s1 w:3);
my @SKUS = qw(- 0 9-9 A A-1 A.1 A1 A:1 A_ B _x a z9 zz);
my (%state, @ops);
for my $li (0 .. $#LOCS) {
    for my $si (0 .. $#SKUS) {
        my $kind = ($li * 7 + $si * 3) % 4;     # 0,1: low; 2: not; 3: min 0
        my $body = $kind <= 1 ? { on_hand => $kind + 1, min_level => 5 }
                 : $kind == 2 ? { on_hand => 10, min_level => 5 }
                 :              { on_hand => 0, min_level => 0 };
        push @ops, [ $LOCS[$li], $SKUS[$si], $body ];
        $state{"$LOCS[$li]\0$SKUS[$si]"} = $kind <= 1;
    }
}
# a bulk location with 110 low items: more than the default page
for my $i (0 .. 109) {
    my $sku = sprintf 'B%03d', $i;
    push @ops, [ 'bulk', $sku, { on_hand => 0, min_level => 1 } ];
    $state{"bulk\0$sku"} = 1;
}
my @fails = grep { length } parallel(6, sub {
    my ($c) = @_;
    my $out = '';
    for my $k (grep { $_ % 6 == $c } 0 .. $#ops) {
        my ($l, $s, $b) = @{ $ops[$k] };
        my $r = $n->req(PUT => "/v1/inventory/$s/$l", json => $b);
        $out .= InvTest::show($r) . "\n" unless $r->{status} == 201;
    }
    return $out;
});
ok(!@fails, 'setup: ' . scalar(@ops) . ' items created') or diag @fails;

my @LOW = sort grep { $state{$_} } keys %state;    # keys sort as bytes
my %LOWSET = map { $_ => 1 } @LOW;
diag scalar(@LOW) . ' low items of ' . scalar(@ops);

# --- the whole list -----------------------------------------------------------------
my @bad;
my ($all, $next) = page(low('limit=1000'), 1000, 'limit=1000', \@bad);
ok(!@bad, 'limit=1000: well-formed page of full low items') or diag join "\n", @bad;
is_deeply([ map { key($_) } @$all ], \@LOW,
          'limit=1000: exactly the low items, in (location, sku) byte order')
    or diag join ' ', map { name($_) } @$all;
is($next, undef, '... next_cursor null');
my $same = 0;
for my $it (@$all) {
    my $g = $n->req(GET => "/v1/inventory/$it->{sku}/$it->{location}");
    $same++ if ref $g->{json} eq 'HASH' && encode_json($g->{json}) eq encode_json($it);
}
is($same, scalar @$all, 'each listed item equals GET of the item');

($all, $next) = page(low(), undef, 'no arguments', \@bad);
is(scalar @$all, 100, 'no limit: 100 items (default)');
is_deeply([ map { key($_) } @$all ], [ @LOW[0 .. 99] ], '... the first 100');
ok(defined $next && length $next, '... with a next_cursor');
($all, $next) = page(low("cursor=$next"), undef, 'second default page', \@bad);
is_deeply([ map { key($_) } @$all ], [ @LOW[100 .. $#LOW] ],
          '... then the remaining ' . (@LOW - 100));
is($next, undef, '... and next_cursor null');

for my $lim (1, 3, 7, 100, 999) {
    my ($items, $wp, $pages) = walk(undef, $lim);
    ok(!@$wp, "paging with limit $lim: well-formed pages ($pages)")
        or diag join "\n", @$wp[0 .. ($#$wp > 5 ? 5 : $#$wp)];
    is_deeply([ map { key($_) } @$items ], \@LOW,
              "paging with limit $lim: every low item once, in order");
}

# --- the location filter ---------------------------------------------------------------
for my $l (@LOCS, 'bulk') {
    my @want = grep { index($_, "$l\0") == 0 } @LOW;
    my ($items, $wp, $pages) = walk("location=$l", 2);
    ok(!@$wp, "location=$l, limit 2: well-formed pages") or diag join "\n", @$wp;
    is_deeply([ map { key($_) } @$items ], \@want,
              "location=$l: its " . @want . ' low items only, in order');
}
my @s = grep { index($_, "s\0") == 0 } @LOW;
cmp_ok(scalar @s, '>=', 3, 'location s has at least 3 low items');
($all, $next) = page(low('location=s&limit=' . @s), undef, 'exact', \@bad);
is(scalar @$all, scalar @s, 'location s, limit = its count: all of them');
is($next, undef, '... next_cursor null (an exact last page)');
($all, $next) = page(low('location=s&limit=' . (@s - 1)), undef, 'one short', \@bad);
ok(defined $next, 'limit one short: a next_cursor');
($all, $next) = page(low("location=s&cursor=$next"), undef, 'rest', \@bad);
is_deeply([ map { key($_) } @$all ], [ $s[-1] ], '... then the last item');
is($next, undef, '... and null');
is(low('location=nowhere')->{body}, '{"items":[],"next_cursor":null}',
   'an unknown location: empty list');
is(low('location=s-')->{body}, '{"items":[],"next_cursor":null}',
   'a location that only prefixes others: empty list');
ok(!@bad, 'filter pages well-formed') or diag join "\n", @bad;

# --- bad arguments ---------------------------------------------------------------------
for my $c (['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=x', 'limit'],
           ['limit=-1', 'limit'], ['limit=', 'limit'], ['limit=2.5', 'limit'],
           ['location=', 'location'], ['location=a%20b', 'location'],
           ['location=a%2Fb', 'location'], ['location=' . ('x' x 65), 'location'],
           ['location=%C3%A9', 'location'], ['location=a%00b', 'location'],
           ['cursor=zzz', 'cursor'], ['cursor=!!!', 'cursor'],
           ['cursor=', 'cursor'], ['cursor=a', 'cursor'],
           ['cursor=' . b64u('no-separator'), 'cursor'],
           ['cursor=' . b64u("\0sku"), 'cursor'],
           ['cursor=' . b64u("loc\0"), 'cursor'],
           ['cursor=' . b64u("lo c\0sku"), 'cursor'],
           ['cursor=' . b64u("loc\0sku\0x"), 'cursor'],
           ['cursor=' . b64u('x' x 65 . "\0sku"), 'cursor'],
           ['cursor=' . MIME::Base64::encode_base64("s\0?>?", ''), 'cursor'])
{
    problem_ok(low($c->[0]), 400, 'invalid-request', "?$c->[0] is 400",
               field => $c->[1]);
}
problem_ok(low('limit=0&location=&cursor=zzz'), 400, 'invalid-request',
           'three bad arguments: 400');
problem_ok($n->req(POST => '/v1/low-stock', json => {}), 405,
           'method-not-allowed', 'POST /v1/low-stock is 405', allow => ['GET']);

# --- entering and leaving --------------------------------------------------------------
sub in_list {
    my ($l, $s) = @_;
    my $j = low("location=$l&limit=1000")->{json};
    my ($it) = grep { $_->{sku} eq $s } @{ ref $j eq 'HASH' ? $j->{items} : [] };
    return $it;
}
my $E = '/v1/inventory/E-1/enter';
$n->req(PUT => $E, json => { on_hand => 10, min_level => 5 });
ok(!in_list('enter', 'E-1'), 'a new item with available >= min_level is not listed');
$r = $n->req(POST => "$E/reservations", json => { quantity => 6 });
my $rid = ref $r->{json} eq 'HASH' ? $r->{json}{id} // '' : '';
my $it = in_list('enter', 'E-1');
ok($it && $it->{reserved} == 6 && $it->{available} == 4,
   'a reservation taking available below min_level: listed, with reserved')
    or diag encode_json($it);
$n->req(POST => "/v1/reservations/$rid/release");
ok(!in_list('enter', 'E-1'), 'its release: no longer listed');
$n->req(PUT => $E, json => { on_hand => 10, min_level => 11 });
ok(in_list('enter', 'E-1'), 'PUT raising min_level above available: listed');
$n->req(PUT => $E, json => { on_hand => 10, min_level => 0 });
ok(!in_list('enter', 'E-1'), 'PUT with min_level 0: not listed');
$n->req(PUT => $E, json => { on_hand => 10, min_level => 5 });
$n->req(POST => '/v1/transfers', json => { sku => 'E-1', from => 'enter',
                                           to => 'other', quantity => 7 });
$it = in_list('enter', 'E-1');
ok($it && $it->{on_hand} == 3, 'a transfer out below min_level: listed')
    or diag encode_json($it);
ok(!in_list('other', 'E-1'), '... the target (min_level 0) is not');
$n->req(POST => "$E/adjustments", json => { delta => 1 });
ok(in_list('enter', 'E-1'), 'an adjustment that leaves it low: still listed');
$n->req(POST => "$E/adjustments", json => { delta => 1 });
ok(!in_list('enter', 'E-1'), 'an adjustment to available == min_level: not listed');
$r = $n->req(POST => "$E/reservations", json => { quantity => 1 });
ok(in_list('enter', 'E-1'), 'reserve 1: listed again');
$n->req(POST => '/v1/reservations/' . ($r->{json}{id} // '') . '/commit');
ok(in_list('enter', 'E-1'), 'its commit (on_hand and reserved both drop): still listed');
my $X = '/v1/inventory/X-1/enter';
$n->req(PUT => $X, json => { on_hand => 10, min_level => 5 });
$r = $n->req(POST => "$X/reservations", json => { quantity => 8, ttl_seconds => 1 });
ok(in_list('enter', 'X-1'), 'a reservation with ttl 1 s making it low: listed');
my $t0 = time;
sleep 0.2 while in_list('enter', 'X-1') && time - $t0 < 5;
ok(!in_list('enter', 'X-1'), sprintf 'its expiry by the module: no longer listed '
                                     . '(after %.1f s)', time - $t0);

# --- writes between pages ----------------------------------------------------------------
# keys of low items, in order; pick actions relative to the page boundaries
sub path_of { my ($l, $s) = split /\0/, $_[0]; "/v1/inventory/$s/$l" }
sub make_high { $n->req(POST => path_of($_[0]) . '/adjustments',
                        json => { delta => 1000 }) }
sub make_low  { $n->req(PUT => path_of($_[0]), json => { on_hand => 0,
                                                        min_level => 3 }) }
my @NOTLOW = sort grep { !$state{$_} } keys %state;
my %left;       # keys made not low before their page
my %entered;    # keys made low ahead of the cursor
my %changed;
my $step = sub {
    my ($page, $so_far) = @_;
    my $cur = key($so_far->[-1]);
    my @ahead = grep { $_ gt $cur && !$changed{$_} } @LOW;
    my @behind = grep { $_ lt $cur && !$changed{$_} } @LOW;
    if ($page % 3 == 1) {
        # the cursor's own item leaves; one already listed leaves; one ahead
        # leaves
        for my $k ($cur, $behind[0] // (), $ahead[1] // ()) {
            next if $changed{$k}++;
            make_high($k);
            $left{$k} = 1 if $k gt $cur;
        }
    } elsif ($page % 3 == 2) {
        # a not-low item ahead enters, one behind enters
        my ($a) = grep { $_ gt $cur && !$changed{$_} } @NOTLOW;
        my ($b) = grep { $_ lt $cur && !$changed{$_} } @NOTLOW;
        for my $k ($a // (), $b // ()) {
            $changed{$k}++;
            make_low($k);
            $entered{$k} = 1 if $k gt $cur;
        }
    }
};
my ($items, $wp, $pages) = walk(undef, 5, $step);
ok(!@$wp, "paging (limit 5) while items change between pages: $pages "
          . 'well-formed pages') or diag join "\n", @$wp;
my @op = order_problems($items);
ok(!@op, '... strictly increasing (location, sku)') or diag join "\n", @op;
my %got;
$got{ key($_) }++ for @$items;
my @skipped = grep { !$changed{$_} && ($got{$_} // 0) != 1 } @LOW;
ok(!@skipped, '... every item low throughout listed exactly once')
    or diag join ', ', map { s/\0/\//r } @skipped;
my @ghost = grep { $got{$_} } sort keys %left;
ok(!@ghost, '... no item that left the list before its page')
    or diag join ', ', map { s/\0/\//r } @ghost;
my @new = grep { !$got{$_} } sort keys %entered;
ok(!@new && %entered, '... items that became low ahead of the cursor are listed ('
                      . scalar(keys %entered) . ')')
    or diag join ', ', map { s/\0/\//r } @new;
cmp_ok(scalar(keys %left), '>=', 10, "(items that left ahead or at the cursor: "
                                     . scalar(keys %left) . ')');

# what is low now, for the churn below
my ($now) = walk(undef, 1000);
my @STABLE = map { key($_) } @$now;

# --- paging under concurrent churn ------------------------------------------------------
# churn items interleave with the stable ones; a child flips them while
# the parent pages again and again
my @CHURN = map { my $l = $_; map { "$l\0C$_" } 0 .. 3 } @LOCS;
for my $k (@CHURN) { make_low($k) }
my $flag = $n->dir . '/churn-stop';
my @passes;
my @res = parallel(2, sub {
    my ($i) = @_;
    if ($i == 0) {
        my ($w, $round, $fail) = (0, 0, '');
        my $t0 = time;
        until (-e $flag || time - $t0 > 20) {
            $round++;
            for my $k (@CHURN) {
                $w++;
                my $r = ($round % 2) ? make_high($k) : make_low($k);
                $fail .= InvTest::show($r) . "\n" if $r->{status} != 200
                                                    && length $fail < 2000;
            }
        }
        return encode_json({ writes => $w, fail => $fail });
    }
    my @out;
    my $t0 = time;
    for my $pass (1 .. 20) {
        my ($it, $p, $pg) = walk(undef, 3);
        my %g;
        $g{ key($_) }++ for @$it;
        my @miss = grep { ($g{$_} // 0) != 1 } @STABLE;
        push @out, { pages => $pg, problems => [ @$p, order_problems($it) ],
                     missing => [ map { s/\0/\//r } @miss ],
                     churn_seen => scalar(grep { /\0C\d\z/ } keys %g) };
    }
    open my $fh, '>', $flag;
    close $fh;
    return encode_json({ passes => \@out, secs => time - $t0 });
});
my ($churn, $pager) = map { eval { decode_json($_) } // { died => $_ } } @res;
ok($churn->{writes} && !length($churn->{fail} // 'x'),
   "churn: $churn->{writes} writes flipping " . @CHURN . ' items')
    or diag encode_json($churn);
my @pp = @{ $pager->{passes} // [] };
is(scalar @pp, 20, 'twenty full passes with limit 3 during the churn')
    or diag encode_json($pager);
my $pi = 0;
for my $p (@pp) {
    $pi++;
    ok(!@{ $p->{problems} } && !@{ $p->{missing} },
       "pass $pi ($p->{pages} pages, $p->{churn_seen} churn items seen): "
       . 'well-formed, strictly ordered, every stable low item once')
        or diag encode_json($p);
}
diag sprintf 'churn: %d writes during %.1f s of paging', $churn->{writes} // 0,
    $pager->{secs} // 0;

# --- across a restart ---------------------------------------------------------------------
my $before = low('limit=1000')->{body};
$n->restart;
is(low('limit=1000')->{body}, $before, 'the list is identical after a restart');

$n->stop;
done_testing;
