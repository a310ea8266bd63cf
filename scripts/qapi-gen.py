#!/usr/bin/env python3
"""Generate vireo's monitor code from the QAPI schema in qapi/.

Output (into OUTDIR; with --prefix P every file name starts with P, and so
do the C names of the tables, type descriptors and event senders, with
'-' turned into '_', so each program's schema gets tables of its own):
  qapi-types.h / qapi-types.c   C types for every enum, struct and list used
                                by a command or event, with member tables
                                that qapi/qapi-runtime.c walks to convert
                                values to and from JSON and to free them.
  qapi-commands.h / .c          one prototype per command handler
                                (qmp_<name>) and the dispatch table.
  qapi-events.h / .c            qapi_event_send_<name>() per event.
  qapi-introspect.c             the reply of query-qmp-schema, as JSON text.

Usage: qapi-gen.py [--prefix P] SCHEMA OUTDIR

The schema language is QAPI's: JSON objects with single-quoted strings,
'#' comments, and 'include' directives.
"""
import json
import os
import re
import sys

BUILTIN_C = {
    'str': 'char *', 'int': 'int64_t ', 'int8': 'int8_t ', 'int16': 'int16_t ',
    'int32': 'int32_t ', 'int64': 'int64_t ', 'uint8': 'uint8_t ',
    'uint16': 'uint16_t ', 'uint32': 'uint32_t ', 'uint64': 'uint64_t ',
    'size': 'uint64_t ', 'bool': 'bool ', 'number': 'double ',
    'any': 'json_object *', 'null': 'json_object *',
}
BUILTIN_JSON = {
    'str': 'string', 'bool': 'boolean', 'number': 'number', 'any': 'value',
    'null': 'null',
}
C_KEYWORDS = {'default', 'case', 'if', 'else', 'for', 'while', 'do', 'switch',
              'break', 'continue', 'return', 'int', 'char', 'bool', 'struct',
              'union', 'enum', 'static', 'register', 'unsigned', 'signed',
              'auto', 'goto', 'sizeof', 'typedef', 'volatile', 'const',
              'extern', 'float', 'double', 'long', 'short', 'void', 'inline'}


# ---------------------------------------------------------------- parsing

class SchemaError(Exception):
    pass


def tokenize(text, fname):
    pos, line = 0, 1
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == '\n':
            line += 1
            pos += 1
        elif c in ' \t\r':
            pos += 1
        elif c == '#':
            while pos < n and text[pos] != '\n':
                pos += 1
        elif c in '{}[]:,':
            yield c, c, line
            pos += 1
        elif c == "'":
            end = pos + 1
            buf = []
            while end < n and text[end] != "'":
                if text[end] == '\\':
                    end += 1
                if end >= n or text[end] == '\n':
                    raise SchemaError(f"{fname}:{line}: unterminated string")
                buf.append(text[end])
                end += 1
            yield 'str', ''.join(buf), line
            pos = end + 1
        elif text.startswith('true', pos):
            yield 'val', True, line
            pos += 4
        elif text.startswith('false', pos):
            yield 'val', False, line
            pos += 5
        else:
            raise SchemaError(f"{fname}:{line}: unexpected character {c!r}")


def parse_expressions(text, fname):
    toks = list(tokenize(text, fname))
    pos = 0

    def value():
        nonlocal pos
        kind, val, line = toks[pos]
        pos += 1
        if kind in ('str', 'val'):
            return val
        if kind == '{':
            obj = {}
            if toks[pos][0] == '}':
                pos += 1
                return obj
            while True:
                k, key, l2 = toks[pos]
                if k != 'str':
                    raise SchemaError(f"{fname}:{l2}: expected a key")
                pos += 1
                if toks[pos][0] != ':':
                    raise SchemaError(f"{fname}:{l2}: expected ':'")
                pos += 1
                if key in obj:
                    raise SchemaError(f"{fname}:{l2}: duplicate key '{key}'")
                obj[key] = value()
                k = toks[pos][0]
                pos += 1
                if k == '}':
                    return obj
                if k != ',':
                    raise SchemaError(f"{fname}:{l2}: expected ',' or '}}'")
        if kind == '[':
            arr = []
            if toks[pos][0] == ']':
                pos += 1
                return arr
            while True:
                arr.append(value())
                k = toks[pos][0]
                pos += 1
                if k == ']':
                    return arr
                if k != ',':
                    raise SchemaError(f"{fname}:{line}: expected ',' or ']'")
        raise SchemaError(f"{fname}:{line}: unexpected {val!r}")

    exprs = []
    while pos < len(toks):
        line = toks[pos][2]
        exprs.append((value(), fname, line))
    return exprs


def load_schema(path, seen=None):
    seen = set() if seen is None else seen
    path = os.path.abspath(path)
    if path in seen:
        return []
    seen.add(path)
    with open(path) as f:
        exprs = parse_expressions(f.read(), os.path.basename(path))
    out = []
    for expr, fname, line in exprs:
        if 'include' in expr:
            out += load_schema(os.path.join(os.path.dirname(path), expr['include']), seen)
        else:
            out.append((expr, fname, line))
    return out


# ---------------------------------------------------------------- model

def c_name(name):
    name = re.sub(r'[^A-Za-z0-9_]', '_', name)
    return 'q_' + name if name in C_KEYWORDS or name[0].isdigit() else name


def camel_to_upper(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0:
            prev = name[i - 1]
            nxt = name[i + 1] if i + 1 < len(name) else ''
            if prev.islower() or prev.isdigit() or (prev.isupper() and nxt.islower()):
                out.append('_')
        out.append(ch)
    return c_name(''.join(out)).upper()


class Member:
    def __init__(self, key, typ):
        self.optional = key.startswith('*')
        self.name = key[1:] if self.optional else key
        self.type = typ   # str name or [name]


def members_of(data):
    return [Member(k, v if not isinstance(v, dict) else v['type']) for k, v in data.items()]


class Schema:
    def __init__(self, exprs, cprefix=''):
        self.cprefix = cprefix   # C names of generated data start with it
        self.enums, self.structs, self.unions, self.alternates = {}, {}, {}, {}
        self.commands, self.events = [], []
        self.order = []   # (kind, name) in definition order
        self.c_types = []
        for expr, fname, line in exprs:
            self._add(expr, fname, line)
        self._check()

    def _add(self, e, fname, line):
        where = f"{fname}:{line}"
        if 'enum' in e:
            vals = [v if isinstance(v, str) else v['name'] for v in e['data']]
            self.enums[e['enum']] = {'values': vals, 'prefix': e.get('prefix'), 'where': where}
            self.order.append(('enum', e['enum']))
        elif 'struct' in e:
            base = e.get('base')
            mems = members_of(e['data'])
            self.structs[e['struct']] = {'members': mems, 'base': base, 'where': where,
                                         'features': e.get('features', [])}
            self.order.append(('struct', e['struct']))
        elif 'union' in e:
            self.unions[e['union']] = {'base': e['base'], 'discriminator': e['discriminator'],
                                       'data': e['data'], 'where': where}
            self.order.append(('union', e['union']))
        elif 'alternate' in e:
            self.alternates[e['alternate']] = {'data': e['data'], 'where': where}
            self.order.append(('alternate', e['alternate']))
        elif 'command' in e:
            data = e.get('data', {})
            if isinstance(data, str):
                raise SchemaError(f"{where}: named argument types are not supported")
            self.commands.append({
                'name': e['command'], 'args': members_of(data), 'returns': e.get('returns'),
                'gen': e.get('gen', True), 'allow-preconfig': e.get('allow-preconfig', False),
                'allow-oob': e.get('allow-oob', False),
                'success-response': e.get('success-response', True),
                'features': e.get('features', []), 'where': where})
        elif 'pragma' in e:
            # c-types: types hand-written handlers parse, which no generated
            # command or event names (a hand-marshalled command's full arguments)
            self.c_types += e['pragma'].get('c-types', [])
        elif 'event' in e:
            self.events.append({'name': e['event'], 'args': members_of(e.get('data', {})),
                                'features': e.get('features', []), 'where': where})
        else:
            raise SchemaError(f"{where}: unknown expression {list(e)}")

    def kind(self, t):
        if isinstance(t, list):
            return 'list'
        if t in BUILTIN_C:
            return 'builtin'
        for k, table in (('enum', self.enums), ('struct', self.structs),
                         ('union', self.unions), ('alternate', self.alternates)):
            if t in table:
                return k
        return None

    def _check(self):
        def check_type(t, where):
            if isinstance(t, list):
                if len(t) != 1:
                    raise SchemaError(f"{where}: list types have one element type")
                return check_type(t[0], where)
            if self.kind(t) is None:
                raise SchemaError(f"{where}: unknown type '{t}'")
        for name, s in self.structs.items():
            for m in s['members']:
                check_type(m.type, s['where'])
        for c in self.commands:
            for m in c['args']:
                check_type(m.type, c['where'])
            if c['returns']:
                check_type(c['returns'], c['where'])
        for ev in self.events:
            for m in ev['args']:
                check_type(m.type, ev['where'])

    def struct_members(self, name):
        s = self.structs[name]
        base = []
        if s['base']:
            base = self.struct_members(s['base'])
        return base + s['members']


# ---------------------------------------------------------------- C types

def c_type(schema, t):
    if isinstance(t, list):
        return list_name(t[0]) + ' *'
    k = schema.kind(t)
    if k == 'builtin':
        return BUILTIN_C[t]
    if k in ('alternate', 'union'):
        return 'json_object *'      # checked by the handler, as 'any' is
    if k == 'enum':
        return t + ' '
    if k == 'struct':
        return t + ' *'
    raise SchemaError(f"type '{t}' cannot be used from C here")


def list_name(elem):
    return elem + 'List'


def type_desc(schema, t):
    """Name of the QapiType variable describing values of type t (built-in
    types are described once, in qapi/qapi-runtime.c, without prefix)."""
    if isinstance(t, list):
        return schema.cprefix + 'qapi_type_' + list_name(t[0])
    if schema.kind(t) == 'builtin':
        return 'qapi_type_' + t
    if schema.kind(t) in ('alternate', 'union'):
        return 'qapi_type_any'
    return schema.cprefix + 'qapi_type_' + t


def enum_const(schema, enum, value):
    prefix = schema.enums[enum]['prefix'] or camel_to_upper(enum)
    return prefix + '_' + c_name(value).upper()


class CGen:
    def __init__(self, schema, file_prefix=''):
        self.s = schema
        self.fp = file_prefix   # of the generated files' names
        self.cp = schema.cprefix
        self.used = []          # type names needing C, in dependency-friendly order
        self.used_set = set()
        self.lists = []         # element type names with a list type
        self.lists_set = set()
        self.implicit = []      # (c struct name, members) for command args / event data

    def use(self, t):
        if isinstance(t, list):
            self.use(t[0])
            if t[0] not in self.lists_set:
                self.lists_set.add(t[0])
                self.lists.append(t[0])
            return
        if t in self.used_set or self.s.kind(t) in ('builtin', 'alternate', 'union'):
            return
        self.used_set.add(t)
        k = self.s.kind(t)
        if k == 'struct':
            for m in self.s.struct_members(t):
                self.use(m.type)
        elif k != 'enum':
            raise SchemaError(f"type '{t}' ({k}) is not supported in generated C")
        self.used.append(t)

    def collect(self):
        for c in self.s.commands:
            if not c['gen']:
                continue
            for m in c['args']:
                self.use(m.type)
            if c['returns']:
                self.use(c['returns'])
            self.implicit.append((arg_struct(c), c['args']))
        for ev in self.s.events:
            for m in ev['args']:
                self.use(m.type)
            self.implicit.append((event_struct(ev), ev['args']))
        for t in self.s.c_types:
            self.use(t)
        for c in self.s.commands:
            if not c['gen']:
                self.implicit.append((arg_struct(c), c['args']))
                for m in c['args']:
                    self.use(m.type)

    def struct_fields(self, members):
        out = []
        for m in members:
            if m.optional:
                out.append(f"    bool has_{c_name(m.name)};")
            out.append(f"    {c_type(self.s, m.type)}{c_name(m.name)};")
        return out or ["    char unused_;  /* no members */"]

    def member_table(self, cname, members):
        rows = []
        for m in members:
            has = f"offsetof({cname}, has_{c_name(m.name)})" if m.optional else "QAPI_NO_HAS"
            rows.append(f'    {{ "{m.name}", &{type_desc(self.s, m.type)}, '
                        f'offsetof({cname}, {c_name(m.name)}), {has} }},')
        return rows

    def desc(self, name):
        """The QapiType variable of a schema (not built-in) type."""
        return f'{self.cp}qapi_type_{name}'

    def guard(self, what):
        return f'VIREO_{self.cp.upper()}QAPI_{what}_H'

    def include(self, what):
        return f'#include "qapi/{self.fp}qapi-{what}.h"'

    def types_h(self):
        o = ['/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */',
             f'#ifndef {self.guard("TYPES")}', f'#define {self.guard("TYPES")}', '',
             '#include "qapi/qapi-runtime.h"', '']
        for t in self.used:
            if self.s.kind(t) == 'enum':
                vals = self.s.enums[t]['values']
                o.append(f'typedef enum {t} {{')
                for i, v in enumerate(vals):
                    o.append(f'    {enum_const(self.s, t, v)} = {i},')
                o.append(f'    {camel_to_upper(t) if not self.s.enums[t]["prefix"] else self.s.enums[t]["prefix"]}__MAX = {len(vals)},')
                o.append(f'}} {t};')
                o.append(f'extern const char *const {t}_str[];')
                o.append('')
        for t in self.used:
            if self.s.kind(t) == 'struct':
                o.append(f'typedef struct {t} {t};')
        for e in self.lists:
            ln = list_name(e)
            o.append(f'typedef struct {ln} {ln};')
        o.append('')
        for e in self.lists:
            ln = list_name(e)
            o += [f'struct {ln} {{', f'    {ln} *next;', f'    {c_type(self.s, e)}value;', '};', '']
        for t in self.used:
            if self.s.kind(t) == 'struct':
                o.append(f'struct {t} {{')
                o += self.struct_fields(self.s.struct_members(t))
                o += ['};', '']
        for cname, members in self.implicit:
            o.append(f'typedef struct {cname} {{')
            o += self.struct_fields(members)
            o += [f'}} {cname};', '']
        for t in self.used:
            o.append(f'extern const QapiType {self.desc(t)};')
        for e in self.lists:
            o.append(f'extern const QapiType {self.desc(list_name(e))};')
        for cname, _ in self.implicit:
            o.append(f'extern const QapiType {self.desc(cname)};')
        o.append('')
        for t in self.used:
            if self.s.kind(t) == 'struct':
                o.append(f'static inline void qapi_free_{t}({t} *p) {{ qapi_free_struct(&{self.desc(t)}, p); }}')
        for e in self.lists:
            ln = list_name(e)
            o.append(f'static inline void qapi_free_{ln}({ln} *p) {{ qapi_free_value(&{self.desc(ln)}, &p); }}')
        o += ['', '#endif', '']
        return '\n'.join(o)

    def types_c(self):
        o = ['/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */',
             '#include <stddef.h>', self.include('types'), '']
        for t in self.used:
            if self.s.kind(t) == 'enum':
                vals = self.s.enums[t]['values']
                o.append(f'const char *const {t}_str[] = {{')
                o += [f'    "{v}",' for v in vals]
                o += ['    NULL,', '};', '']
                o.append(f'const QapiType {self.desc(t)} = {{ .name = "{t}", .kind = QAPI_KIND_ENUM, '
                         f'.size = sizeof({t}), .enum_values = {t}_str, .enum_count = {len(vals)} }};')
                o.append('')
        def struct_desc(cname, members, display):
            o.append(f'static const QapiMember {cname}_members[] = {{')
            o.extend(self.member_table(cname, members) or ['    { NULL, NULL, 0, 0 },'])
            o.append('};')
            o.append(f'const QapiType {self.desc(cname)} = {{ .name = "{display}", .kind = QAPI_KIND_STRUCT, '
                     f'.size = sizeof({cname} *), .struct_size = sizeof({cname}), '
                     f'.members = {cname}_members, .nr_members = {len(members)} }};')
            o.append('')
        for t in self.used:
            if self.s.kind(t) == 'struct':
                struct_desc(t, self.s.struct_members(t), t)
        for cname, members in self.implicit:
            struct_desc(cname, members, cname)
        for e in self.lists:
            ln = list_name(e)
            o.append(f'const QapiType {self.desc(ln)} = {{ .name = "[{e}]", .kind = QAPI_KIND_LIST, '
                     f'.size = sizeof({ln} *), .node_size = sizeof({ln}), '
                     f'.value_offset = offsetof({ln}, value), .elem = &{type_desc(self.s, e)} }};')
        return '\n'.join(o) + '\n'

    def commands_h(self):
        o = ['/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */',
             f'#ifndef {self.guard("COMMANDS")}', f'#define {self.guard("COMMANDS")}', '',
             self.include('types'), '#include "util/error.h"', '']
        for c in self.s.commands:
            fn = 'qmp_' + c_name(c['name'])
            if not c['gen']:
                o.append(f'json_object *{fn}(json_object *args, Error **errp);')
                continue
            params = self.c_params(c['args']) + ['Error **errp']
            ret = c_type(self.s, c['returns']) if c['returns'] else 'void '
            o.append(f'{ret}{fn}({", ".join(params)});')
        o += ['', f'extern const QmpCommand {self.cp}qmp_commands[];',
              f'extern const int {self.cp}qmp_nr_commands;']
        if self.cp:
            # A prefixed schema is served by the monitor core, which takes
            # the commands and the introspection data as one table.
            o += [f'extern const char {self.cp}qapi_introspection_json[];',
                  f'extern const QmpCommandTable {self.cp}qmp_command_table;']
        o += ['', '#endif', '']
        return '\n'.join(o)

    def commands_c(self):
        o = ['/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */',
             self.include('commands'), '']
        for c in self.s.commands:
            cn = c_name(c['name'])
            if not c['gen']:
                continue
            a = arg_struct(c)
            o.append(f'static json_object *qmp_marshal_{cn}(void *argp, Error **errp)')
            o.append('{')
            o.append(f'    {a} *a = argp;')
            o.append('    (void)a;')
            args = []
            for m in c['args']:
                if m.optional:
                    args.append(f'a->has_{c_name(m.name)}')
                args.append(f'a->{c_name(m.name)}')
            args.append('errp')
            call = f'qmp_{cn}({", ".join(args)})'
            if c['returns']:
                rt = c['returns']
                o.append(f'    {c_type(self.s, rt)}ret = {call};')
                o.append('    if (*errp) {')
                o.append(f'        qapi_free_value(&{type_desc(self.s, rt)}, &ret);')
                o.append('        return NULL;')
                o.append('    }')
                o.append(f'    json_object *out = qapi_value_to_json(&{type_desc(self.s, rt)}, &ret);')
                o.append(f'    qapi_free_value(&{type_desc(self.s, rt)}, &ret);')
                o.append('    return out;')
            else:
                o.append(f'    {call};')
                o.append('    return *errp ? NULL : json_object_new_object();')
            o.append('}')
            o.append('')
        o.append(f'const QmpCommand {self.cp}qmp_commands[] = {{')
        for c in self.s.commands:
            cn = c_name(c['name'])
            flags = []
            if c['allow-preconfig']:
                flags.append('QMP_CMD_ALLOW_PRECONFIG')
            if c['allow-oob']:
                flags.append('QMP_CMD_ALLOW_OOB')
            if not c['success-response']:
                flags.append('QMP_CMD_NO_SUCCESS_RESPONSE')
            if 'unstable' in c['features']:
                flags.append('QMP_CMD_UNSTABLE')
            fl = ' | '.join(flags) or '0'
            if c['gen']:
                o.append(f'    {{ "{c["name"]}", &{self.desc(arg_struct(c))}, qmp_marshal_{cn}, NULL, {fl} }},')
            else:
                o.append(f'    {{ "{c["name"]}", &{self.desc(arg_struct(c))}, NULL, qmp_{cn}, {fl} }},')
        o.append('};')
        o.append(f'const int {self.cp}qmp_nr_commands = {len(self.s.commands)};')
        if self.cp:
            o.append(f'const QmpCommandTable {self.cp}qmp_command_table = {{ {self.cp}qmp_commands, '
                     f'{len(self.s.commands)}, {self.cp}qapi_introspection_json }};')
        return '\n'.join(o) + '\n'

    def events_h(self):
        o = ['/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */',
             f'#ifndef {self.guard("EVENTS")}', f'#define {self.guard("EVENTS")}', '',
             self.include('types'), '']
        for ev in self.s.events:
            o.append(f'void {self.cp}qapi_event_send_{c_name(ev["name"].lower())}({self.event_params(ev)});')
        o += ['', '#endif', '']
        return '\n'.join(o)

    def c_params(self, members):
        """C parameters for members: has_X flags for optional ones, const strings."""
        params = []
        for m in members:
            if m.optional:
                params.append(f'bool has_{c_name(m.name)}')
            ct = c_type(self.s, m.type)
            if ct == 'char *':
                ct = 'const char *'
            params.append(f'{ct}{c_name(m.name)}')
        return params

    def event_params(self, ev):
        return ', '.join(self.c_params(ev['args'])) or 'void'

    def events_c(self):
        o = ['/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */',
             self.include('events'), '']
        for ev in self.s.events:
            o.append(f'void {self.cp}qapi_event_send_{c_name(ev["name"].lower())}({self.event_params(ev)})')
            o.append('{')
            if ev['args']:
                cs = event_struct(ev)
                inits = []
                for m in ev['args']:
                    if m.optional:
                        inits.append(f'.has_{c_name(m.name)} = has_{c_name(m.name)}')
                    cast = '(char *)' if c_type(self.s, m.type) == 'char *' else ''
                    inits.append(f'.{c_name(m.name)} = {cast}{c_name(m.name)}')
                o.append(f'    {cs} data = {{ {", ".join(inits)} }};')
                o.append(f'    qapi_event_emit("{ev["name"]}", qapi_struct_to_json(&{self.desc(cs)}, &data));')
            else:
                o.append(f'    qapi_event_emit("{ev["name"]}", NULL);')
            o.append('}')
            o.append('')
        return '\n'.join(o)


def arg_struct(c):
    return 'q_obj_' + c_name(c['name']) + '_arg'


def event_struct(ev):
    return 'q_obj_' + c_name(ev['name']) + '_arg'


# ---------------------------------------------------------------- introspection

class Introspect:
    """Build the SchemaInfo list that query-qmp-schema returns."""

    def __init__(self, schema):
        self.s = schema
        self.names = {}      # schema type key -> wire name
        self.entries = []
        self.pending = []
        self.counter = 0

    def builtin_of(self, t):
        if t in ('int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'size', 'int'):
            return 'int'
        return t

    def use(self, t):
        if isinstance(t, list):
            inner = self.use(t[0])
            key = '[' + inner + ']'
            if key not in self.names:
                self.names[key] = key
                self.entries.append({'name': key, 'meta-type': 'array', 'element-type': inner})
            return key
        if isinstance(t, tuple):     # ('implicit', members)
            key = t
        else:
            key = t
            if self.s.kind(t) == 'builtin':
                b = self.builtin_of(t)
                if b not in self.names:
                    self.names[b] = b
                    jt = 'int' if b == 'int' else BUILTIN_JSON[b]
                    self.entries.append({'name': b, 'meta-type': 'builtin', 'json-type': jt})
                return b
        if key not in self.names:
            self.names[key] = str(self.counter)
            self.counter += 1
            self.pending.append(key)
        return self.names[key]

    def object_entry(self, name, members, extra=None):
        ms = []
        for m in members:
            d = {'name': m.name, 'type': self.use(m.type)}
            if m.optional:
                d['default'] = None
            ms.append(d)
        e = {'name': name, 'meta-type': 'object', 'members': ms}
        if extra:
            e.update(extra)
        return e

    def implicit(self, members):
        return ('implicit', tuple((('*' if m.optional else '') + m.name,
                                   json.dumps(m.type)) for m in members))

    def flush(self):
        while self.pending:
            key = self.pending.pop(0)
            name = self.names[key]
            if isinstance(key, tuple):
                members = [Member(k, json.loads(v)) for k, v in key[1]]
                self.entries.append(self.object_entry(name, members))
                continue
            k = self.s.kind(key)
            if k == 'enum':
                vals = self.s.enums[key]['values']
                self.entries.append({'name': name, 'meta-type': 'enum',
                                     'members': [{'name': v} for v in vals], 'values': vals})
            elif k == 'struct':
                e = self.object_entry(name, self.s.struct_members(key))
                if self.s.structs[key]['features']:
                    e['features'] = self.s.structs[key]['features']
                self.entries.append(e)
            elif k == 'union':
                u = self.s.unions[key]
                base = members_of(u['base']) if isinstance(u['base'], dict) else self.s.struct_members(u['base'])
                variants = [{'case': case, 'type': self.use(t)} for case, t in u['data'].items()]
                self.entries.append(self.object_entry(name, base, {'tag': u['discriminator'],
                                                                   'variants': variants}))
            elif k == 'alternate':
                alts = [{'type': self.use(t)} for t in self.s.alternates[key]['data'].values()]
                self.entries.append({'name': name, 'meta-type': 'alternate', 'members': alts})

    def build(self):
        empty = self.implicit([])
        for c in self.s.commands:
            e = {'name': c['name'], 'meta-type': 'command',
                 'arg-type': self.use(self.implicit(c['args']) if c['args'] else empty),
                 'ret-type': self.use(c['returns']) if c['returns'] else self.use(empty)}
            if c['allow-oob']:
                e['allow-oob'] = True
            if c['features']:
                e['features'] = c['features']
            self.entries.append(e)
        for ev in self.s.events:
            e = {'name': ev['name'], 'meta-type': 'event',
                 'arg-type': self.use(self.implicit(ev['args']) if ev['args'] else empty)}
            if ev['features']:
                e['features'] = ev['features']
            self.entries.append(e)
        self.flush()
        return self.entries


def c_string_literal(text):
    out = []
    for i in range(0, len(text), 100):
        chunk = text[i:i + 100].replace('\\', '\\\\').replace('"', '\\"')
        out.append(f'    "{chunk}"')
    return '\n'.join(out)


def write(outdir, name, text):
    path = os.path.join(outdir, name)
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if old != text:
        with open(path, 'w') as f:
            f.write(text)


def parse_args(argv):
    """Returns (file prefix, schema, outdir), or None on a usage error."""
    prefix = ''
    if len(argv) == 5 and argv[1] == '--prefix':
        prefix = argv[2]
        argv = argv[:1] + argv[3:]
    if len(argv) != 3 or not re.fullmatch(r'[a-z0-9-]*', prefix):
        return None
    return prefix, argv[1], argv[2]


def introspect_c(gen, schema):
    intro = json.dumps(Introspect(schema).build(), separators=(',', ':'))
    head = ('/* Generated by scripts/qapi-gen.py from the schema in qapi/. Do not edit. */\n'
            '#include "qapi/qapi-runtime.h"\n')
    if gen.cp:
        head += gen.include('commands') + '\n'
    return (head + f'\nconst char {gen.cp}qapi_introspection_json[] =\n' +
            c_string_literal(intro) + ';\n')


def main():
    args = parse_args(sys.argv)
    if not args:
        print("usage: qapi-gen.py [--prefix PREFIX] SCHEMA OUTDIR", file=sys.stderr)
        return 2
    prefix, schema_path, outdir = args
    try:
        schema = Schema(load_schema(schema_path), prefix.replace('-', '_'))
        gen = CGen(schema, prefix)
        gen.collect()
        write(outdir, prefix + 'qapi-types.h', gen.types_h())
        write(outdir, prefix + 'qapi-types.c', gen.types_c())
        write(outdir, prefix + 'qapi-commands.h', gen.commands_h())
        write(outdir, prefix + 'qapi-commands.c', gen.commands_c())
        write(outdir, prefix + 'qapi-events.h', gen.events_h())
        write(outdir, prefix + 'qapi-events.c', gen.events_c())
        write(outdir, prefix + 'qapi-introspect.c', introspect_c(gen, schema))
    except SchemaError as e:
        print(f"qapi-gen: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
