"""Catalog queries that read the schema back (``worker.schema``): the public schema's types,
tables, columns, constraints, indexes, views, functions and triggers, each in a stable order.
Objects that belong to an extension are left out (the extension is listed instead)."""

EXTENSIONS = """
SELECT extname AS name FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname"""

APPLIED = """
SELECT version, name FROM schema_migrations ORDER BY version"""

_NOT_FROM_EXTENSION = """
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"""

ENUMS = (
    """
SELECT t.typname AS name, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
  JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE n.nspname = 'public'"""
    + _NOT_FROM_EXTENSION.format(oid="t.oid")
    + """
 GROUP BY t.typname
 ORDER BY t.typname"""
)

DOMAINS = (
    """
SELECT t.typname AS name, format_type(t.typbasetype, t.typtypmod) AS base,
       t.typnotnull AS not_null, t.typdefault AS "default",
       coalesce((SELECT array_agg(pg_get_constraintdef(c.oid, true) ORDER BY c.conname)
                   FROM pg_constraint c WHERE c.contypid = t.oid), '{}') AS checks
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = 'public' AND t.typtype = 'd'"""
    + _NOT_FROM_EXTENSION.format(oid="t.oid")
    + """
 ORDER BY t.typname"""
)

TABLES = (
    """
SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"""
    + _NOT_FROM_EXTENSION.format(oid="c.oid")
    + """
 ORDER BY c.relname"""
)

COLUMNS = """
SELECT c.relname AS "table", a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default",
       a.attidentity AS identity, a.attgenerated AS generated,
       col_description(c.oid, a.attnum) AS comment
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum"""

CONSTRAINTS = """
SELECT c.relname AS "table", k.conname AS name, pg_get_constraintdef(k.oid, true) AS definition
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND k.contype IN ('p', 'u', 'f', 'c', 'x')
 ORDER BY c.relname, position(k.contype IN 'pufcx'), k.conname"""

INDEXES = """
SELECT c.relname AS "table", i.relname AS name, pg_get_indexdef(i.oid) AS definition
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid AND k.contype IN ('p', 'u', 'x'))
 ORDER BY c.relname, i.relname"""

SEQUENCES = """
SELECT c.relname AS name
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'S'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
 ORDER BY c.relname"""

VIEWS = (
    """
SELECT c.relname AS name, c.relkind = 'm' AS materialized,
       pg_get_viewdef(c.oid, true) AS definition
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm')"""
    + _NOT_FROM_EXTENSION.format(oid="c.oid")
    + """
 ORDER BY c.relname"""
)

FUNCTIONS = (
    """
SELECT p.proname AS name, p.prokind AS kind,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result,
       l.lanname AS language,
       CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END
           AS volatility,
       obj_description(p.oid, 'pg_proc') AS comment
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = 'public'"""
    + _NOT_FROM_EXTENSION.format(oid="p.oid")
    + """
 ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)"""
)

TRIGGERS = """
SELECT c.relname AS "table", t.tgname AS name, pg_get_triggerdef(t.oid, true) AS definition
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND NOT t.tgisinternal
 ORDER BY c.relname, t.tgname"""
