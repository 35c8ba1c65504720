#!/usr/bin/perl
# How the module's files depend on each other, read from the functions the
# built objects define and call (nm): calls go one way (module -> handler ->
# {read, write, feed, replication} -> follow -> wait -> {commit, inflight}
# -> {ctx, response, lease} -> the store -> the pure core), with no circle between files; only the store's files call
# LMDB (the admin tool's checker is one of them); only json.c and render*.c
# write JSON; the pure core and the store use nothing of nginx.
use strict;
use warnings;
use Test::More;
use FindBin;
use File::Basename qw(dirname basename);
use File::Temp qw(tempdir);

my $root = "$FindBin::Bin/..";
my $module = $ENV{INVENTORY_MODULE} // "$root/build/ngx_http_inventory_module.so";
my $objs = dirname($module) . '/nginx/objs/addon/src';
my @objs = glob "$objs/ngx_http_inventory_*.o";
plan skip_all => "no objects in $objs (make module)" unless @objs;
plan skip_all => 'nm is not installed'
    unless system('nm --version >/dev/null 2>&1') == 0;

# the admin tool's own files, compiled here to read their symbols
my $tmp = tempdir(CLEANUP => 1);
for my $src (grep { -e } map { "$root/src/ngx_http_inventory_$_.c" }
             qw(admin store_verify))
{
    my $o = "$tmp/" . basename($src) =~ s/\.c$/.o/r;
    system('cc', '-std=c99', '-D_DEFAULT_SOURCE', "-I$root/src", '-c', $src,
           '-o', $o) == 0 or BAIL_OUT("cannot compile $src");
    push @objs, $o;
}

my (%defines, %needs);    # file => [symbols]
for my $o (@objs) {
    my $f = basename($o) =~ s/^ngx_http_inventory_//r =~ s/\.o$//r;
    for (`nm $o`) {
        if (/^\s*U (\S+)/) { push @{ $needs{$f} }, $1 }
        elsif (/^[0-9a-f]+ T (\S+)/) { push @{ $defines{$f} }, $1 }
    }
}
my %owner;
for my $f (keys %defines) { $owner{$_} = $f for @{ $defines{$f} } }

my %calls;    # file => { file it calls => a symbol }
for my $f (keys %needs) {
    for my $s (@{ $needs{$f} }) {
        my $to = $owner{$s} // next;
        $calls{$f}{$to} //= $s unless $to eq $f;
    }
}

# ranks: a file calls only files of a lower rank
my %rank = (module => 9, admin => 9,
            variables => 8.5, handler => 8, metrics => 8,
            read => 7, write => 7, feed => 7, bulk => 7, expiry => 7,
            replication => 7,
            cluster => 6.9, handover => 6.87, etcd => 6.85, role => 6.82,
            follow => 6.8, follow_http => 6.7, sync => 6.6, wait => 6.5,
            commit => 6, inflight => 6, commit_zone => 5.5,
            ctx => 5, args => 5, response => 5, lease => 5, body => 5,
            node => 5);
my @pure = qw(core clock codec json validate render render_read render_parts
              render_batch pack uri proc);
my %pure = map { $_ => 1 } @pure;
for my $f (keys %defines) {
    $rank{$f} //= $f =~ /^store/ ? 3 : $pure{$f} ? 1 : undef;
    ok(defined $rank{$f}, "$f has a place in the layers")
        or $rank{$f} = 0;
}

for my $f (sort keys %calls) {
    for my $to (sort keys %{ $calls{$f} }) {
        next if $rank{$f} == 1 && $rank{$to} == 1;    # checked for circles
        next if $rank{$f} == 3 && $rank{$to} == 3;    # the store's own files
        ok($rank{$f} > $rank{$to}, "$f calls down into $to")
            or diag "$f calls $calls{$f}{$to}, defined in $to";
    }
}

# no circle among any files, the pure core's and the store's included
my (%state, @path, @circles);
sub visit {
    my ($f) = @_;
    $state{$f} = 1;
    push @path, $f;
    for my $to (sort keys %{ $calls{$f} // {} }) {
        if (($state{$to} // 0) == 1) {
            my @c = @path;
            shift @c while $c[0] ne $to;
            push @circles, join ' -> ', @c, $to;
        } elsif (!$state{$to}) {
            visit($to);
        }
    }
    pop @path;
    $state{$f} = 2;
}
visit($_) for sort keys %defines;
is_deeply(\@circles, [], 'no circle of calls between files')
    or diag join "\n", @circles;

for my $f (sort keys %needs) {
    my @lmdb = grep { /^mdb_/ } @{ $needs{$f} };
    my @json = grep { /^yajl_gen_(?!free|alloc|config)/ } @{ $needs{$f} };
    my @ngx = grep { /^ngx_(?!http_inventory_)/ } @{ $needs{$f} };

    is("@lmdb", '', "$f: calls no LMDB function") unless $f =~ /^store/;
    is("@json", '', "$f: writes no JSON") unless $f =~ /^(?:json|render\w*)$/;
    if ($rank{$f} <= 3 || $f eq 'admin') {
        is("@ngx", '', "$f: uses nothing of nginx");
    }
}

done_testing();
