"""Tests of ``scope.free_names`` against Python's own scoping (the ``symtable`` module).

For each snippet, the global names that a function or class reads when it runs
must be exactly the names CPython's symbol table marks global and referenced
in that scope or any scope nested in it.  One adjustment: the symbol table
records ``x += 1`` as a store only, although it reads ``x``; the oracle sees
it spelled ``x = x + 1``.
"""

from __future__ import annotations

import ast
import symtable
import textwrap

import pytest

from nb2pipe.scope import free_names

SNIPPETS = {
    "nested_functions": """
        def outer(a):
            b = a + base
            def middle():
                c = b
                def inner():
                    return c + b + deep + len([])
                return inner
            return middle
    """,
    "comprehensions": """
        def f(rows):
            pairs = [(x, y) for row in rows for x in row if x > limit for y in ys]
            lookup = {k: v for k, v in table.items()}
            gen = (w for w in words)
            return pairs, lookup, gen, x_unused
    """,
    "class_body_with_methods": """
        class C(Base, metaclass=Meta):
            size = default_size
            names = [n for n in size_list]
            total = [n + size for n in range(3)]
            def method(self, v):
                return v * size + helper(self.size)
            @staticmethod
            def make():
                return super_factory(), __class__
    """,
    "global_and_nonlocal": """
        def f():
            global g1
            g1 = 1
            n = 0
            def inner():
                nonlocal n
                n += step
                global g2
                g2 += 1
                return g1
            return inner
    """,
    "lambdas_with_defaults": """
        def f(a):
            g = lambda b=dflt, *, c=a + kd: b + c + free
            h = lambda: (lambda q=a: q + other)()
            return g, h
    """,
    "walrus_in_comprehension": """
        def f(data):
            vals = [y := v * scale for v in data]
            nested = [[z := w for w in row] for row in grid]
            return y, z, vals, nested
    """,
    "decorators_and_annotations_inside": """
        def f():
            @deco(arg)
            def g(x: XT = dv) -> RT:
                local: LT = x
                return local
            return g
    """,
    "try_match_del_imports": """
        def f(v):
            import os.path
            from json import dumps as d
            try:
                r = v()
            except Err as e:
                r = e
            match r:
                case Point(x=px, y=0) if px > lim:
                    out = px
                case [first, *rest]:
                    out = first + len(rest)
                case {"k": kv, **others}:
                    out = kv, others
                case const.VALUE:
                    out = None
            z = 1
            del z
            return out, os.path.sep, d(r)
    """,
    "unpacking_fstrings_with": """
        def f(items):
            a, *b = items
            with ctx() as (h, i):
                pass
            for j, (k, m) in pairs:
                pass
            return f"{a!r:>{width}} {b} {h} {i} {j} {k} {m} {glob}"
    """,
    "local_read_before_assignment_is_local": """
        def f():
            print(x)
            x = 1
    """,
    "class_inside_function_sees_function_locals_in_methods": """
        def f():
            v = 1
            class C:
                attr = v + w
                def m(self):
                    return v, attr
            return C
    """,
    "class_global_declarations": """
        class C:
            global G
            G = 1
            def m(self):
                global H
                H = G + I
    """,
    "async_code": """
        async def f():
            global counter
            counter += 1
            async with lock:
                async for item in source:
                    await sink(item)
            return [w async for w in stream()]
    """,
    "lambda_walrus_stays_in_lambda": """
        def f(xs):
            fs = [lambda: (t := v) for v in xs]
            return fs, t
    """,
}


class _AugToPlain(ast.NodeTransformer):
    """``x += e`` -> ``x = x + e``, so that the symbol table sees the read."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.target, ast.Name):
            return node
        load = ast.Name(node.target.id, ast.Load())
        return ast.copy_location(ast.Assign([node.target], ast.BinOp(load, node.op, node.value)),
                                 node)


def symtable_globals(source: str, name: str) -> set[str]:
    """Global names referenced in scope ``name`` or below, per CPython."""
    plain = ast.unparse(ast.fix_missing_locations(_AugToPlain().visit(ast.parse(source))))
    module = symtable.symtable(plain, "<snippet>", "exec")
    [table] = [t for t in module.get_children() if t.get_name() == name]
    found: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        found.update(s.get_name() for s in table.get_symbols()
                     if s.is_global() and s.is_referenced())
        for child in table.get_children():
            walk(child)

    walk(table)
    return found


def top_definition(source: str) -> ast.AST:
    return ast.parse(source).body[0]


@pytest.mark.parametrize("key", sorted(SNIPPETS))
def test_free_reads_match_symtable(key: str) -> None:
    source = textwrap.dedent(SNIPPETS[key])
    node = top_definition(source)
    assert set(free_names(node).reads) == symtable_globals(source, node.name)


def test_the_oracle_sees_what_it_should() -> None:
    """Guard against a vacuous comparison: the oracle does find globals."""
    source = textwrap.dedent(SNIPPETS["global_and_nonlocal"])
    assert symtable_globals(source, "f") == {"step", "g1", "g2"}


def test_mutations_of_globals_and_parameters() -> None:
    node = top_definition(textwrap.dedent("""
        def f(frame, other):
            frame["c"] = 1
            other.head()
            log.append(frame)
            table.loc[0, "a"] = 2
            local = []
            local.append(1)
    """))
    free = free_names(node)
    assert free.mutates == {"log", "table"}
    assert free.mutated_params == {"frame"}
    assert free.assigns == frozenset()


def test_assigned_globals() -> None:
    node = top_definition(textwrap.dedent("""
        def f():
            global g
            g = 1
            def inner():
                global h
                h = 2
            return inner
    """))
    assert free_names(node).assigns == {"g", "h"}


def test_walrus_in_a_top_level_comprehension_binds_outside_it() -> None:
    """``y`` is the module's; the first iterable (``data``) is the caller's to read."""
    [stmt] = ast.parse("[y := v for v in data if v > y]").body
    free = free_names(stmt.value)
    assert free.reads == {"y"}
    assert free.assigns == {"y"}
