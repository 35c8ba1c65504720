# docs/openapi.yaml: valid OpenAPI 3.1 (the official schema, through
# @seriousme/openapi-schema-validator, and every Schema Object compiled by
# Ajv in strict mode); it describes exactly the routes and methods of the
# module's route table (src/ngx_http_inventory_uri.c), /metrics and the
# replication stream's resources (src/ngx_http_inventory_replication.c), and
# every problem code the module emits (src/ngx_http_inventory_render_parts.c) at
# its status; live answers of the module for every route and most statuses
# match the operations' response schemas and headers, and request bodies
# the module accepts or rejects are accepted or rejected by the schemas;
# build/swagger-ui/ (make docs-tools), served as conf/nginx.conf serves it,
# renders every operation in headless Chromium.
#
# The tools come from make docs-tools (build/npm) and make deps (node,
# chromium): missing ones fail the test.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use POSIX ();
use JSON::PP ();
use InvTest qw(encode_json decode_json slurp which);

my $ROOT = $InvTest::ROOT;
my $NPM = "$ROOT/build/npm";
my $SPEC = "$ROOT/docs/openapi.yaml";
my $UI = "$ROOT/build/swagger-ui";
my $VALIDATE = "$NPM/node_modules/.bin/validate-api";
my $TMP = tempdir('inventory-openapi-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{INVENTORY_KEEP});
my @METHODS = qw(get put post delete options head patch trace);

sub spew {
    my ($f, $c) = @_;
    open my $fh, '>', $f or die "write $f: $!";
    print {$fh} $c;
    close $fh or die "write $f: $!";
}


# run(\@cmd, $timeout): (exit status, stdout, stderr); a command still
# running after $timeout seconds is killed with its process group
my $RUNS = 0;
sub run {
    my ($cmd, $timeout) = @_;
    my $n = ++$RUNS;
    my ($out, $err) = ("$TMP/run$n.out", "$TMP/run$n.err");
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>', $err or POSIX::_exit(127);
        { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
        POSIX::_exit(127);
    }
    my $deadline = time + $timeout;
    my $rc;
    while (1) {
        my $w = waitpid $pid, POSIX::WNOHANG();
        if ($w == $pid) { $rc = $?; last }
        if (time > $deadline) {
            kill 'KILL', -$pid;
            waitpid $pid, 0;
            $rc = -1;
            last;
        }
        sleep 0.05;
    }
    return ($rc, slurp($out) // '', slurp($err) // '');
}

sub show_rc { $_[0] == -1 ? 'timed out' : 'exit ' . ($_[0] >> 8) }

# --------------------------------------------------------------------------
# the tools

my $node = which('node') // which('nodejs');
my $chromium = which('chromium');
my @missing;
push @missing, 'node (make deps installs npm, which brings it)' unless $node;
push @missing, 'chromium (make deps)' unless $chromium;
for my $f ($VALIDATE, "$NPM/node_modules/yaml/package.json",
           "$NPM/node_modules/ajv/package.json",
           "$NPM/node_modules/ajv-formats/package.json",
           "$UI/index.html", "$UI/swagger-initializer.js",
           "$UI/swagger-ui-bundle.js", "$UI/openapi.yaml")
{
    push @missing, "$f (make docs-tools)" unless -e $f;
}
ok(!@missing, 'node, chromium, the OpenAPI validator and build/swagger-ui '
              . 'are installed')
    or diag "missing:\n  " . join("\n  ", @missing);
if (@missing) {
    done_testing;
    exit;
}

my $spec_text = slurp($SPEC);
ok(defined $spec_text && length $spec_text, 'docs/openapi.yaml is there');
ok((slurp("$UI/openapi.yaml") // '') eq $spec_text,
   'build/swagger-ui/openapi.yaml is the current docs/openapi.yaml')
    or diag 'run make docs-tools to refresh the copy';
like(slurp("$UI/swagger-initializer.js"), qr/url:\s*"openapi\.yaml"/,
     'swagger-initializer.js loads openapi.yaml from its own directory');

# --------------------------------------------------------------------------
# a. the validator (the official OAS 3.1 schema), on the spec and on a
# broken copy of it, so that a validator that accepts anything is noticed

my ($rc, $out, $err) = run([$VALIDATE, $SPEC], 60);
ok($rc == 0 && $out =~ /"valid":\s*true/,
   'validate-api: docs/openapi.yaml is valid OpenAPI 3.1')
    or diag show_rc($rc) . "\n$out$err";
like($spec_text, qr/^openapi:\s*3\.1\.\d+\s*$/m, 'it is OpenAPI 3.1.x');

for my $broken (
    [ 'an unknown top-level member', "x-ok: 1\nbogus: 1\n$spec_text" ],
    [ 'a dangling $ref',
      $spec_text =~ s{#/components/schemas/Item'}
                     {#/components/schemas/NoSuchSchema'}r ],
    [ 'an operation without responses',
      $spec_text =~ s{^(\s+)operationId: getItem\n}
                     {$1operationId: getItem\n$1responses: 5\n}mr ],
)
{
    my ($what, $text) = @$broken;
    spew("$TMP/broken.yaml", $text);
    my ($brc, $bout, $berr) = run([$VALIDATE, "$TMP/broken.yaml"], 60);
    ok($brc != 0 && $bout =~ /"valid":\s*false/,
       "validate-api rejects a copy with $what")
        or diag show_rc($brc) . "\n$bout$berr";
}

# --------------------------------------------------------------------------
# the node side: YAML to JSON, Schema Objects compiled by Ajv (strict),
# problem bodies and live samples checked against the spec

my $CHECK = <<'JS';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const [, , npmDir, inputFile] = process.argv;
const require = createRequire(npmDir + '/check.cjs');
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const input = JSON.parse(readFileSync(inputFile, 'utf8'));
const out = { yaml_errors: [], schema_errors: [], problems: {},
              samples: [] };
const doc = YAML.parseDocument(readFileSync(input.spec, 'utf8'),
                               { uniqueKeys: true });
for (const e of doc.errors) out.yaml_errors.push(String(e.message));
const spec = doc.toJS();
out.spec = spec;

// Schema Objects: JSON Schema 2020-12 plus the OAS vocabulary
const ajv = new Ajv2020({ strict: true, strictTypes: false,
                          strictRequired: false, allErrors: true,
                          allowUnionTypes: true });
addFormats(ajv);
for (const k of ['example', 'xml', 'externalDocs']) ajv.addKeyword(k);
const ROOT = 'urn:inventory:openapi';
const rw = (x) => {
    if (Array.isArray(x)) return x.map(rw);
    if (x === null || typeof x !== 'object') return x;
    const o = {};
    for (const [k, v] of Object.entries(x)) {
        o[k] = (k === '$ref' && typeof v === 'string'
                && v.startsWith('#/components/schemas/'))
               ? ROOT + '#/$defs/' + v.slice(21) : rw(v);
    }
    return o;
};
const lookup = (ref) => {
    let o = spec;
    for (const p of ref.replace(/^#\//, '').split('/'))
        o = o?.[p.replace(/~1/g, '/').replace(/~0/g, '~')];
    return o;
};
const resolve = (o) => {
    for (let i = 0; o && o.$ref && i < 20; i++) o = lookup(o.$ref);
    return o;
};
const compiled = new Map();
const compile = (schema, where) => {
    if (!compiled.has(where)) {
        try {
            compiled.set(where, ajv.compile(rw(schema)));
        } catch (e) {
            out.schema_errors.push(where + ': ' + e.message);
            compiled.set(where, null);
        }
    }
    return compiled.get(where);
};
const check = (v, schema, where) => {
    const f = compile(schema, where);
    if (!f) return 'the schema does not compile';
    return f(v) ? null : ajv.errorsText(f.errors, { separator: '; ' });
};

try {
    ajv.addSchema({ $id: ROOT, $defs: rw(spec.components?.schemas ?? {}) });
} catch (e) {
    out.schema_errors.push('components/schemas: ' + e.message);
}
for (const name of Object.keys(spec.components?.schemas ?? {}))
    compile({ $ref: '#/components/schemas/' + name },
            'components/schemas/' + name);

// every other Schema Object: under parameters, headers and media types
const walk = (x, where) => {
    if (Array.isArray(x)) {
        x.forEach((v, i) => walk(v, where + '/' + i));
        return;
    }
    if (x === null || typeof x !== 'object') return;
    for (const [k, v] of Object.entries(x)) {
        if (k === 'schema' && v && typeof v === 'object')
            compile(v, where + '/schema');
        else if (k !== 'schemas') walk(v, where + '/' + k);
    }
};
walk(spec.paths, 'paths');
walk(spec.components, 'components');

// problem codes: which response components accept a body of the code, and
// where operations use them at the code's status
const usedAt = {};
for (const [p, item] of Object.entries(spec.paths ?? {}))
    for (const m of ['get', 'put', 'post', 'delete', 'options', 'head',
                     'patch', 'trace']) {
        for (const [st, r] of Object.entries(item[m]?.responses ?? {}))
            if (r.$ref) (usedAt[r.$ref.split('/').pop()] ??= [])
                .push({ status: st, op: m.toUpperCase() + ' ' + p });
    }
for (const pr of input.problems ?? []) {
    const base = { type: 'urn:inventory:problem:' + pr.code,
                   title: pr.title, status: pr.status, detail: 'x',
                   code: pr.code };
    const variants = [base,
        { ...base, errors: [{ field: 'body', message: 'x' }] },
        { ...base, available: 0 },
        { ...base, lines: [{ sku: 'A', location: 'B', quantity: 1,
                             available: 0 }] },
        { ...base, state: 'committed' },
        { ...base, current_version: 1 }];
    const res = { components: [], operations: [] };
    for (const [name, r0] of Object.entries(spec.components?.responses ?? {})) {
        const mt = resolve(r0)?.content?.['application/problem+json'];
        if (!mt) continue;
        if (!variants.some((v) => !check(v, mt.schema, 'responses/' + name)))
            continue;
        res.components.push(name);
        for (const u of usedAt[name] ?? [])
            if (u.status === String(pr.status)) res.operations.push(u.op);
    }
    out.problems[pr.code] = res;
}

// live samples
const norm = (t) => (t ?? '').toLowerCase().replace(/\s+/g, '');
for (const s of input.samples ?? []) {
    const errs = [];
    let resp;
    if (s.component) {
        resp = resolve(spec.components?.responses?.[s.component]);
        if (!resp) errs.push('no response component ' + s.component);
    } else {
        const op = spec.paths?.[s.template]?.[s.method.toLowerCase()];
        if (!op) {
            errs.push('no operation ' + s.method + ' ' + s.template);
        } else {
            resp = resolve(op.responses?.[String(s.status)]
                           ?? op.responses?.default);
            if (!resp) errs.push('status ' + s.status + ' is not listed');
            if (s.expect_request) {
                const mt = resolve(op.requestBody)
                           ?.content?.['application/json'];
                let v;
                try { v = JSON.parse(s.request_body) }
                catch (e) { v = undefined }
                const e = mt ? (v === undefined ? 'not JSON'
                                : check(v, mt.schema, 'request ' + s.method
                                        + ' ' + s.template))
                             : 'no application/json request body';
                if (s.expect_request === 'valid' && e)
                    errs.push('request body ' + s.request_body
                              + ', accepted by the module, is rejected: ' + e);
                if (s.expect_request === 'invalid' && !e)
                    errs.push('request body ' + s.request_body
                              + ', a 400 for the module, is accepted');
            }
        }
    }
    if (resp) {
        for (const [name, h0] of Object.entries(resp.headers ?? {})) {
            const h = resolve(h0);
            const v = s.headers[name.toLowerCase()];
            if (v === undefined) {
                if (h.required) errs.push('header ' + name + ' is missing');
                continue;
            }
            const e = h.schema && check(v, h.schema, 'header ' + name);
            if (e) errs.push('header ' + name + ': ' + e);
        }
        const content = resp.content ?? {};
        if (s.body.length && s.method !== 'HEAD') {
            const key = Object.keys(content)
                              .find((k) => norm(k) === norm(s.content_type));
            if (!key) {
                errs.push('Content-Type ' + s.content_type + ' is not one of: '
                          + Object.keys(content).join(', '));
            } else if (/json/.test(key)) {
                let v;
                try { v = JSON.parse(s.body) } catch (e) { v = undefined }
                const e = v === undefined ? 'the body is not JSON'
                        : content[key].schema
                          && check(v, content[key].schema,
                                   (s.component ?? s.method + ' ' + s.template
                                    + ' ' + s.status) + ' ' + key);
                if (e) errs.push('body: ' + e);
            }
        } else if (s.method !== 'HEAD' && s.status !== 304
                   && Object.keys(content).length) {
            errs.push('no body, but the spec describes one');
        }
    }
    out.samples.push(errs);
}
process.stdout.write(JSON.stringify(out));
JS
spew("$TMP/check.mjs", $CHECK);

sub node_check {
    my (%in) = @_;
    spew("$TMP/input.json", encode_json({ spec => $SPEC, %in }));
    my ($rc, $out, $err) = run([$node, "$TMP/check.mjs", $NPM,
                                "$TMP/input.json"], 60);
    my $res = $rc == 0 ? eval { decode_json($out) } : undef;
    ok($res, 'the node checker ran') or diag show_rc($rc) . "\n$err$out";
    return $res // { spec => {}, yaml_errors => ['no result'],
                     schema_errors => [], problems => {}, samples => [] };
}

# the module's problem codes, statuses and titles, in the order of the enum
my $render = slurp("$ROOT/src/ngx_http_inventory_render_parts.c") // '';
my ($table) = $render =~ /ngx_http_inventory_problem_types\[\]\s*=\s*\{
                          (.*?)\n\};/xs;
my @problems;
while (($table // '') =~ /\{\s*"([a-z-]+)",\s*(\d+),\s*
                          ((?:"(?:[^"\\]|\\.)*"\s*)+)\}/xg)
{
    my ($code, $status, $t) = ($1, $2, $3);
    push @problems, { code => $code, status => $status + 0,
                      title => join '', $t =~ /"((?:[^"\\]|\\.)*)"/g };
}
my ($enum) = (slurp("$ROOT/src/ngx_http_inventory_render.h") // '')
             =~ /typedef enum \{(.*?)\}\s*ngx_http_inventory_problem_e;/s;
my @enum = grep { $_ ne 'LAST' } ($enum // '') =~ /NGX_HTTP_INVENTORY_P_(\w+)/g;
ok(@problems >= 11 && @problems == @enum,
   scalar(@problems) . ' problem types in render_parts.c, one per enum value')
    or diag "table: @{[ map { $_->{code} } @problems ]}\nenum: @enum";
is_deeply([ map { $_->{code} } @problems ],
          [ map { lc(s/_/-/gr) } @enum ],
          'the problem table follows the enum');
my %code_of = map { $enum[$_] => $problems[$_]{code} } 0 .. $#enum;

my %emitted;
for my $f (glob("$ROOT/src/*.c")) {
    my $src = slurp($f) // '';
    $emitted{$_} = 1 for grep { $_ ne 'LAST' }
                         $src =~ /\bNGX_HTTP_INVENTORY_P_(\w+)\b/g;
}
my @unknown = grep { !defined $code_of{$_} } sort keys %emitted;
ok(!@unknown, 'every problem the sources emit has a code')
    or diag "@unknown";
my @emitted = sort map { $code_of{$_} // () } keys %emitted;

my $res = node_check(problems => \@problems);
my $spec = $res->{spec};
ok(!@{ $res->{yaml_errors} }, 'the YAML parses (unique keys)')
    or diag join "\n", @{ $res->{yaml_errors} };
ok(!@{ $res->{schema_errors} },
   'every Schema Object compiles with Ajv (JSON Schema 2020-12, strict)')
    or diag join "\n", @{ $res->{schema_errors} };

# --------------------------------------------------------------------------
# b. the spec against the route table and the problem codes

my $handler = slurp("$ROOT/src/ngx_http_inventory_uri.c") // '';
my ($routes) = $handler =~ /ngx_http_inventory_routes\[\]\s*=\s*\{
                            (.*?)\n\};/xs;
my %want;    # path => { METHOD => 1 }
my %allow_of;    # path => the Allow header
my $entries = 0;
while (($routes // '') =~ /\{\s*"([^"]+)",\s*(\d+),\s*
                           (?:NULL|"([^"]+)"),\s*
                           NGX_HTTP_INVENTORY_(\w+)_PARAMS?,\s*
                           NGX_HTTP_INVENTORY_ROUTE_\w+,\s*
                           ([^,"]+?),\s*"([^"]+)",[^}]*\}/xg)
{
    my ($first, $nsegs, $last, $params, $mask, $allow)
        = ($1, $2, $3, $4, $5, $6);
    $entries++;
    my @seg = ($first);
    for my $i (1 .. $nsegs - 1) {
        push @seg, $i == $nsegs - 1 && defined $last ? $last
                   : $params eq 'ITEM' ? ($i == 1 ? '{sku}' : '{location}')
                   : $params eq 'ID' ? '{id}' : "?";
    }
    my $path = '/v1/' . join '/', @seg;
    my %allow = map { $_ => 1 } split /,\s*/, $allow;
    my %mask = map { $_ => 1 }
               map { $_ eq 'NGX_HTTP_INVENTORY_M_READ' ? ('GET', 'HEAD')
                     : s/^NGX_HTTP_INVENTORY_M_//r }
               split /\s*\|\s*/, $mask;
    is_deeply(\%allow, \%mask, "route $path: Allow lists the methods served");
    $want{$path} = \%allow;
    $allow_of{$path} = $allow;
}
# every entry a path can name: those of unknown and metrics have none
my $count = () = ($routes // '') =~ /\{\s*"/g;
ok($entries >= 13 && $entries == $count,
   "$entries routes parsed from ngx_http_inventory_routes")
    or diag "parsed $entries of $count entries";

my ($mallow) = ($routes // '')
               =~ /NGX_HTTP_INVENTORY_ROUTE_METRICS,\s*[^,]+,\s*"([^"]+)"/;
ok($mallow, '/metrics: the methods it allows');
$want{'/metrics'} = { map { $_ => 1 } split /,\s*/, $mallow // '' };

# the resources of a location with inventory_replication (/replication/ in
# the spec, as in conf/nginx.conf), each with the method its entry of the
# table in replication.c allows; together, those the route table allows
my $stream = slurp("$ROOT/src/ngx_http_inventory_replication.c") // '';
my %stream = $stream =~ /\{\s*ngx_string\("(\w+)"\),\s*NGX_HTTP_\w+,\s*"(\w+)"/g;
my ($sallow) = ($routes // '')
               =~ /NGX_HTTP_INVENTORY_ROUTE_REPLICATION,\s*[^,]+,\s*"([^"]+)"/;
ok(keys(%stream) >= 3 && $sallow,
   'the replication resources: '
   . join(', ', map { "$_ ($stream{$_})" } sort keys %stream));
is(join(', ', sort { $a cmp $b } keys %{ { reverse %stream } }),
   join(', ', sort split /,\s*/, $sallow // ''),
   'the route table allows the methods of the replication resources');
$want{"/replication/$_"} = { $stream{$_} => 1 } for keys %stream;

my %have;    # path => { METHOD => 1 }, from the spec
for my $p (keys %{ $spec->{paths} // {} }) {
    $have{$p} = { map { uc($_) => 1 }
                  grep { ref $spec->{paths}{$p}{$_} } @METHODS };
}
for my $p (sort keys %want) {
    is_deeply($have{$p}, $want{$p},
              "the spec has $p with exactly "
              . join(', ', sort keys %{ $want{$p} }));
}
my @extra = grep { !$want{$_} } sort keys %have;
ok(!@extra, 'the spec has no path the module does not serve')
    or diag "@extra";

my @spec_codes = @{ $spec->{components}{schemas}{Problem}{properties}{code}
                    {enum} // [] };
my %spec_code = map { $_ => 1 } @spec_codes;
is_deeply([ sort @spec_codes ], [ sort map { $_->{code} } @problems ],
          'the Problem schema lists exactly the module\'s problem codes');
is_deeply([ sort { $a <=> $b } @{ $spec->{components}{schemas}{Problem}
                                  {properties}{status}{enum} // [] } ],
          [ sort { $a <=> $b } keys %{{ map { $_->{status} => 1 }
                                         @problems }} ],
          'the Problem schema lists exactly their statuses');
like($spec->{components}{schemas}{Problem}{properties}{type}{pattern} // '',
     qr/^\^urn:inventory:problem:/,
     'problem types are urn:inventory:problem:*');
for my $pr (@problems) {
    my $c = $pr->{code};
    my $r = $res->{problems}{$c} // {};
    ok($spec_code{$c} && @{ $r->{components} // [] },
       "problem $c ($pr->{status}): a response of the spec describes it")
        or diag explain $r;
    # 405 answers methods that have no operation: the component is enough
    next if $pr->{status} == 405;
    ok(@{ $r->{operations} // [] },
       "problem $c: some operation lists it at $pr->{status}")
        or diag explain $r;
}
for my $c (@emitted) {
    ok($spec_code{$c}, "emitted problem code $c is in the spec");
}

# --------------------------------------------------------------------------
# live answers against the spec, with the /docs/ locations of conf/nginx.conf

my $conf = slurp("$ROOT/conf/nginx.conf") // '';
my ($docs) = $conf =~ /^([ \t]*location \/docs\/ \{\n.*?^[ \t]*\}\n)\n/ms;
my ($docs_redirect) = $conf =~ /^([ \t]*location = \/docs \{.*?\}\n)/ms;
ok($docs && $docs =~ m{^\s*alias build/swagger-ui/;}m,
   'conf/nginx.conf serves build/swagger-ui/ at /docs/')
    or diag $conf;
ok($docs_redirect, 'conf/nginx.conf redirects /docs to /docs/');
$docs = ($docs // '') =~ s{alias build/swagger-ui/;}{alias $UI/;}r;

my $n = InvTest->start(server_extra => $docs . ($docs_redirect // ''));

my @samples;
# sample($method, $path, $status, template => ..., expect_request =>
#        'valid'|'invalid', component => ..., and $n->req options)
sub sample {
    my ($method, $path, $status, %o) = @_;
    my %req = map { exists $o{$_} ? ($_ => $o{$_}) : () }
              qw(json body headers raw);
    my $r = $n->req($method, $path, %req);
    my $t = $o{template} // $path =~ s/\?.*//r;
    is($r->{status}, $status, "$method $path: $status")
        or diag "$r->{status}: $r->{body}";
    my %h;
    for my $k (keys %{ $r->{headers} }) {
        my $v = $r->{headers}{$k};
        $h{lc $k} = ref $v ? join(', ', @$v) : $v;
    }
    push @samples, {
        method => $method, path => $path, template => $t,
        status => $r->{status} + 0, headers => \%h,
        content_type => $r->{content_type} // '', body => $r->{body} // '',
        (exists $o{json} ? (request_body => encode_json($o{json}))
         : defined $o{body} ? (request_body => $o{body}) : ()),
        map { exists $o{$_} ? ($_ => $o{$_}) : () }
            qw(expect_request component),
    };
    return $r;
}

my $I = '/v1/inventory/{sku}/{location}';
my $J = { 'Content-Type' => 'application/json' };

# a reservation that expires while the rest runs: ReservationExpired
sample(PUT => '/v1/inventory/E-1/store-1', 201, template => $I,
       json => { on_hand => 3 }, expect_request => 'valid');
sample(POST => '/v1/inventory/E-1/store-1/reservations', 201,
       template => "$I/reservations",
       json => { quantity => 1, ttl_seconds => 1 }, expect_request => 'valid');

sample(GET => '/v1/health', 200);
sample(HEAD => '/v1/health', 200);
sample(GET => '/metrics', 200);
sample(HEAD => '/metrics', 200);
my $r = sample(POST => '/metrics', 405, component => 'MethodNotAllowed');
is($r->{headers}{allow}, $mallow, '405 on /metrics: Allow');
sample(GET => '/v1/no/such/route', 404, component => 'NotFound');
$r = sample(DELETE => '/v1/inventory/A-1/store-7', 405,
            component => 'MethodNotAllowed');
is($r->{headers}{allow}, $allow_of{$I}, "405 on $I: Allow");

# items
sample(PUT => '/v1/inventory/A-1/store-7', 201, template => $I,
       json => { on_hand => 5, min_level => 10, reason => 'count' },
       expect_request => 'valid');
sample(PUT => '/v1/inventory/A-1/store-7', 200, template => $I,
       json => { on_hand => 50 }, expect_request => 'valid');
sample(PUT => '/v1/inventory/A-1/store-7', 400, template => $I,
       json => { on_hand => 1.5, x => 1 }, expect_request => 'invalid');
sample(PUT => '/v1/inventory/A-1/store-7', 400, template => $I,
       json => { min_level => 1 }, expect_request => 'invalid');
sample(PUT => '/v1/inventory/A-1/store-7', 400, template => $I,
       json => { on_hand => 1, reason => 'x' x 257 },
       expect_request => 'invalid');
sample(PUT => '/v1/inventory/A-1/store-7', 412, template => $I,
       json => { on_hand => 1 }, headers => { 'If-Match' => '"1"' },
       expect_request => 'valid');
sample(PUT => '/v1/inventory/A-1/store-7', 400, template => $I,
       json => { on_hand => 1 }, headers => { 'If-Match' => 'nonsense' });
sample(PUT => '/v1/inventory/A-1/store-7', 415, template => $I,
       body => '{"on_hand":1}', raw => 1);
sample(GET => '/v1/inventory/A-1/store-7', 200, template => $I);
sample(HEAD => '/v1/inventory/A-1/store-7', 200, template => $I);
sample(GET => '/v1/inventory/A-1/store-7', 304, template => $I,
       headers => { 'If-None-Match' => '"3"' });
sample(GET => '/v1/inventory/A-1/store-7?as_of=2000-01-01T00:00:00Z', 404,
       template => $I);
sample(GET => '/v1/inventory/A-1/store-7?as_of=yesterday', 400,
       template => $I);
sample(GET => '/v1/inventory/A-1/no!such', 400, template => $I);
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 200,
       template => "$I/adjustments", json => { delta => 5 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/B-1/store-7/adjustments', 201,
       template => "$I/adjustments", json => { delta => 5, reason => 'in' },
       expect_request => 'valid');
sample(POST => '/v1/inventory/C-1/store-7/adjustments', 404,
       template => "$I/adjustments", json => { delta => -5 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 409,
       template => "$I/adjustments", json => { delta => -1000 },
       expect_request => 'valid');
for my $bad ({ delta => 0 }, { delta => 1000000001 }, { delta => '5' },
             { delta => JSON::PP::true }, {})
{
    sample(POST => '/v1/inventory/A-1/store-7/adjustments', 400,
           template => "$I/adjustments", json => $bad,
           expect_request => 'invalid');
}
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 200,
       template => "$I/adjustments",
       json => { delta => 6, state => 'incoming', reference => 'po:4711' },
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 400,
       template => "$I/adjustments", json => { delta => 1, state => 'lost' },
       expect_request => 'invalid');
sample(PUT => '/v1/inventory/D-1/store-7', 201, template => $I,
       json => { on_hand => 5, safety_stock => 1, backorder_limit => 2,
                 reference => 'count:1' },
       expect_request => 'valid');
# moves
sample(POST => '/v1/inventory/A-1/store-7/moves', 200,
       template => "$I/moves",
       json => { from => 'incoming', to => 'available', quantity => 4,
                 reference => 'po:4711' },
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/moves', 200,
       template => "$I/moves",
       json => { from => 'available', to => 'damaged', quantity => 1 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/moves', 409,
       template => "$I/moves",
       json => { from => 'damaged', to => 'available', quantity => 9 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/NOPE/store-7/moves', 404,
       template => "$I/moves",
       json => { from => 'damaged', to => 'available', quantity => 1 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/moves', 400,
       template => "$I/moves",
       json => { from => 'available', to => 'incoming', quantity => 1 },
       expect_request => 'invalid');
# from = to: described in words
sample(POST => '/v1/inventory/A-1/store-7/moves', 400,
       template => "$I/moves",
       json => { from => 'damaged', to => 'damaged', quantity => 1 });
# reads of many items, and the ledger
sample(GET => '/v1/inventory?changed_after=0&limit=2', 200,
       template => '/v1/inventory');
sample(HEAD => '/v1/inventory', 200, template => '/v1/inventory');
sample(GET => '/v1/inventory?changed_after=-1', 400,
       template => '/v1/inventory');
sample(POST => '/v1/inventory/query', 200,
       json => { items => [ { sku => 'A-1', location => 'store-7' },
                            { sku => 'NOPE', location => 'store-7' } ] },
       expect_request => 'valid');
sample(POST => '/v1/inventory/query', 400, json => { items => [] },
       expect_request => 'invalid');
sample(POST => '/v1/inventory/query', 415, body => '{"items":[]}',
       raw => 1);
sample(GET => '/v1/events?reference=po:4711', 200, template => '/v1/events');
sample(GET => '/v1/events?reference=a%20b', 400, template => '/v1/events');
# batches
sample(POST => '/v1/batch', 200,
       json => { reference => 'count:1',
                 changes => [ { op => 'count', sku => 'A-1',
                                location => 'store-7', on_hand => 60 },
                              { op => 'adjust', sku => 'E-1',
                                location => 'store-7', delta => 2 },
                              { op => 'move', sku => 'A-1',
                                location => 'store-7', from => 'damaged',
                                to => 'available', quantity => 1 } ] },
       expect_request => 'valid');
sample(POST => '/v1/batch', 409,
       json => { changes => [ { op => 'adjust', sku => 'A-1',
                                location => 'store-7', delta => -1000 },
                              { op => 'count', sku => 'A-1',
                                location => 'store-7', on_hand => 1,
                                if_version => 1 } ] },
       expect_request => 'valid');
sample(POST => '/v1/batch', 412,
       json => { changes => [ { op => 'count', sku => 'A-1',
                                location => 'store-7', on_hand => 1,
                                if_version => 1 } ] },
       expect_request => 'valid');
sample(POST => '/v1/batch', 404,
       json => { changes => [ { op => 'adjust', sku => 'NOPE',
                                location => 'store-7', delta => -1 } ] },
       expect_request => 'valid');
sample(POST => '/v1/batch', 200,
       json => { atomic => JSON::PP::false,
                 changes => [ { op => 'adjust', sku => 'A-1',
                                location => 'store-7', delta => 1 },
                              { op => 'adjust', sku => 'NOPE',
                                location => 'store-7', delta => -1 } ] },
       expect_request => 'valid');
sample(POST => '/v1/batch', 400,
       json => { changes => [ { op => 'count', sku => 'A-1',
                                location => 'store-7' } ] },
       expect_request => 'invalid');
sample(GET => '/v1/inventory/A-1', 200, template => '/v1/inventory/{sku}');
sample(HEAD => '/v1/inventory/A-1', 200, template => '/v1/inventory/{sku}');
sample(GET => '/v1/inventory/NOPE', 404, template => '/v1/inventory/{sku}');
sample(GET => '/v1/inventory/' . ('x' x 65), 400,
       template => '/v1/inventory/{sku}');

# reservations
$r = sample(POST => '/v1/inventory/A-1/store-7/reservations', 201,
            template => "$I/reservations",
            json => { quantity => 2, ttl_seconds => 600,
                      reference => 'order-991' },
            headers => { 'If-Match' => '*' }, expect_request => 'valid');
my $id1 = ref $r->{json} eq 'HASH' ? $r->{json}{id} // '' : '';
sample(POST => '/v1/inventory/A-1/store-7/reservations', 409,
       template => "$I/reservations", json => { quantity => 100000 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/NOPE/store-7/reservations', 404,
       template => "$I/reservations", json => { quantity => 1 },
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/reservations', 400,
       template => "$I/reservations",
       json => { quantity => 1, ttl_seconds => 86401 },
       expect_request => 'invalid');
$r = sample(POST => '/v1/reservations', 201,
            json => { lines => [{ sku => 'A-1', location => 'store-7',
                                  quantity => 1 }] },
            expect_request => 'valid');
my $id2 = ref $r->{json} eq 'HASH' ? $r->{json}{id} // '' : '';
sample(POST => '/v1/reservations', 409,
       json => { lines => [{ sku => 'A-1', location => 'store-7',
                             quantity => 1 },
                           { sku => 'B-1', location => 'store-7',
                             quantity => 30 }],
                 reference => 'order-992' },
       expect_request => 'valid');
sample(POST => '/v1/reservations', 404,
       json => { lines => [{ sku => 'X-1', location => 'store-7',
                             quantity => 1 }] },
       expect_request => 'valid');
sample(POST => '/v1/reservations', 400, json => { lines => [] },
       expect_request => 'invalid');
sample(POST => '/v1/reservations', 400,
       json => { lines => [ map { { sku => 'A-1', location => 'store-7',
                                   quantity => 1 } } 1 .. 101 ] },
       expect_request => 'invalid');
sample(POST => '/v1/reservations', 400,
       json => { lines => [{ sku => 'A-1', location => 'store-7' }] },
       expect_request => 'invalid');
my $R = '/v1/reservations/{id}';
sample(GET => "/v1/reservations/$id1", 200, template => $R);
sample(HEAD => "/v1/reservations/$id1", 200, template => $R);
sample(GET => '/v1/reservations/r_0000000000000000000000', 404,
       template => $R);
sample(POST => "/v1/reservations/$id1/commit", 200, template => "$R/commit");
sample(POST => "/v1/reservations/$id1/release", 409,
       template => "$R/release", json => {}, expect_request => 'valid');
sample(POST => "/v1/reservations/$id2/release", 400,
       template => "$R/release", json => { all => 1 },
       expect_request => 'invalid');
sample(POST => "/v1/reservations/$id2/release", 415,
       template => "$R/release", body => 'x',
       headers => { 'Content-Type' => 'text/plain' });
sample(POST => "/v1/reservations/$id2/release", 200,
       template => "$R/release", json => {}, expect_request => 'valid');
sample(POST => '/v1/reservations/r_0000000000000000000000/commit', 404,
       template => "$R/commit");
# a backordered hold is committed only once its stock is there
$n->req(PUT => '/v1/inventory/BO-1/store-7',
        json => { on_hand => 1, backorder_limit => 5 });
$r = $n->req(POST => '/v1/inventory/BO-1/store-7/reservations',
             json => { quantity => 3 });
my $bo = ref $r->{json} eq 'HASH' ? $r->{json}{id} // '' : '';
sample(POST => "/v1/reservations/$bo/commit", 409, template => "$R/commit",
       json => { reason => 'ship' }, expect_request => 'valid');

# transfers
sample(POST => '/v1/transfers', 200,
       json => { sku => 'A-1', from => 'store-7', to => 'wh-1',
                 quantity => 3, reason => 'restock' },
       expect_request => 'valid');
sample(POST => '/v1/transfers', 409,
       json => { sku => 'A-1', from => 'store-7', to => 'wh-1',
                 quantity => 1000 },
       expect_request => 'valid');
sample(POST => '/v1/transfers', 404,
       json => { sku => 'A-1', from => 'nowhere', to => 'wh-1',
                 quantity => 1 },
       expect_request => 'valid');
# from = to: the one rule JSON Schema cannot say (described in words)
sample(POST => '/v1/transfers', 400,
       json => { sku => 'A-1', from => 'wh-1', to => 'wh-1', quantity => 1 });
sample(POST => '/v1/transfers', 400,
       json => { sku => 'A-1', from => 'store 7', to => 'wh-1',
                 quantity => 1 },
       expect_request => 'invalid');

# idempotency
my %K = ('Idempotency-Key' => 'openapi-1');
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 200,
       template => "$I/adjustments", json => { delta => 3 }, headers => \%K,
       expect_request => 'valid');
$r = sample(POST => '/v1/inventory/A-1/store-7/adjustments', 200,
            template => "$I/adjustments", json => { delta => 3 },
            headers => \%K, expect_request => 'valid');
is($r->{headers}{'idempotent-replayed'}, 'true', 'a replay says so');
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 422,
       template => "$I/adjustments", json => { delta => 4 }, headers => \%K,
       expect_request => 'valid');
sample(POST => '/v1/inventory/A-1/store-7/adjustments', 400,
       template => "$I/adjustments", json => { delta => 4 },
       headers => { 'Idempotency-Key' => 'x' x 256 });

# events, history, low stock
my $V = "$I/events";
sample(GET => '/v1/inventory/A-1/store-7/events?limit=2', 200,
       template => $V);
sample(GET => '/v1/inventory/A-1/store-7/events?after_version=2', 200,
       template => $V);
sample(HEAD => '/v1/inventory/A-1/store-7/events', 200, template => $V);
sample(GET => '/v1/inventory/A-1/store-7/events?limit=1001', 400,
       template => $V);
sample(GET => '/v1/inventory/NOPE/store-7/events', 404, template => $V);
sample(GET => '/v1/events?after=0&limit=3', 200);
sample(GET => '/v1/events?after=1000000', 200);
sample(HEAD => '/v1/events', 200);
sample(GET => '/v1/events?wait=31', 400);
for my $s (qw(L-1 L-2 L-3)) {
    sample(PUT => "/v1/inventory/$s/store-1", 201, template => $I,
           json => { on_hand => 1, min_level => 5 }, expect_request => 'valid');
}
$r = sample(GET => '/v1/low-stock?location=store-1&limit=2', 200);
my $cursor = ref $r->{json} eq 'HASH' ? $r->{json}{next_cursor} // '' : '';
ok(length $cursor, 'a first low-stock page has a next_cursor');
sample(GET => "/v1/low-stock?location=store-1&limit=2&cursor=$cursor", 200,
       template => '/v1/low-stock');
sample(HEAD => '/v1/low-stock', 200);
sample(GET => '/v1/low-stock?cursor=xx', 400);
sample(GET => '/v1/low-stock?location=a/b', 400);

# --------------------------------------------------------------------------
# c. the page, as conf/nginx.conf serves it, rendered by headless Chromium

$r = $n->req(GET => '/docs');
ok($r->{status} == 301 && ($r->{headers}{location} // '') =~ m{/docs/$},
   '/docs redirects to /docs/')
    or diag "$r->{status} " . ($r->{headers}{location} // '');
$r = $n->req(GET => '/docs/');
ok($r->{status} == 200 && $r->{content_type} =~ m{^text/html}
   && $r->{body} =~ /swagger-initializer\.js/,
   '/docs/ is the Swagger UI page');
$r = $n->req(GET => '/docs/openapi.yaml');
ok($r->{status} == 200 && $r->{body} eq $spec_text,
   '/docs/openapi.yaml is the spec');
for my $f (qw(swagger-ui.css swagger-ui-bundle.js)) {
    $r = $n->req(GET => "/docs/$f");
    like("$r->{status} $r->{content_type}",
         $f =~ /css$/ ? qr{^200 text/css} : qr{^200 application/javascript},
         "/docs/$f has its media type");
}

my $t0 = time;
($rc, $out, $err) = run([$chromium, '--headless', '--no-sandbox',
                         '--disable-gpu', '--disable-dev-shm-usage',
                         '--no-first-run', "--user-data-dir=$TMP/chromium",
                         '--virtual-time-budget=20000', '--dump-dom',
                         $n->url('/docs/')], 60);
my $took = time - $t0;
ok($rc == 0 && $out =~ /opblock-summary-path/,
   sprintf('chromium rendered /docs/ (%.1f s)', $took))
    or diag show_rc($rc) . "\n" . substr($out, 0, 2000) . "\n"
            . substr($err, -3000);
like($out, qr{<h1 class="title">\s*\Q$spec->{info}{title}\E},
     'the page shows the API\'s title');
unlike($out, qr/class="errors-wrapper"/, 'Swagger UI reports no errors')
    or diag(($out =~ /(class="errors-wrapper".{0,2000})/s)[0]);

my %shown;
while ($out =~ m{<div[ ]class="opblock[ ]opblock-(\w+)[^"]*"[^>]*>.*?
                 <span[ ]class="opblock-summary-path"\s+data-path="([^"]*)"
                 [^>]*>(.*?)</a></span>}gsx)
{
    my ($m, $dp, $text) = (uc $1, $2, $3);
    $text =~ s/<[^>]*>//g;
    $shown{"$m $dp"} = $text;
}
my @ops = map { my $p = $_; map { "$_ $p" } sort keys %{ $have{$p} } }
          sort keys %have;
ok(@ops >= 20, scalar(@ops) . ' operations in the spec');
for my $op (@ops) {
    my ($m, $p) = split / /, $op;
    is($shown{$op}, $p, "the page lists $op");
}
is(scalar keys %shown, scalar @ops, 'and nothing else');

# --------------------------------------------------------------------------
# every event type, the expired reservation's included, against the spec

my ($feed, %types);
my $deadline = time + 10;
while (1) {
    $feed = $n->req(GET => '/v1/events?limit=1000');
    %types = map { $_->{type} => 1 }
             @{ ref $feed->{json} eq 'HASH' ? $feed->{json}{events} : [] };
    last if $types{ReservationExpired} || time > $deadline;
    sleep 0.2;
}
sample(GET => '/v1/events?limit=1000', 200);
sample(GET => '/v1/inventory/E-1/store-1/events', 200, template => $V);
sample(GET => '/v1/inventory/E-1/store-1', 200, template => $I);
is_deeply([ sort keys %types ],
          [ sort @{ $spec->{components}{schemas}{EventBase}{properties}
                    {type}{enum} // [] } ],
          'the log holds every event type of the spec, and no other');

my $live = node_check(samples => \@samples);
for my $i (0 .. $#samples) {
    my $s = $samples[$i];
    my $e = $live->{samples}[$i] // ['not checked'];
    ok(!@$e, "the spec describes $s->{method} $s->{path} -> $s->{status}")
        or diag join("\n", @$e) . "\nbody: " . substr($s->{body}, 0, 1500);
}

$n->stop;
done_testing;
