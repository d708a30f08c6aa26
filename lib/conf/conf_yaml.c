/* conf_yaml.c - the configuration file: YAML walked into dotted keys.
 *
 * The file is read with libyaml's document API (one document, its nodes
 * carry their line numbers) and walked into dotted keys: frontend.listen,
 * scanners.clamd.servers, origins.o2.match, policy_banks.B.originating.
 * Each leaf's text goes to the same setter as a default or an -o override
 * (conf_value_set, or conf_origin_set / conf_bank_set for the named
 * sections), with the line it is on. A YAML list is joined into one text
 * for the list types; its items are checked on their own lines first. */
#include "conf_int.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static bool
node_is_null(const yaml_node_t *n)
{
    const char *s;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    s = (const char *)n->data.scalar.value;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static const char *
node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a map"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a value";
}

/* The value of a leaf key as text; a sequence is joined with ", " (with
 * newlines for KT_PATTERNS; only for list types and KT_CIDR). Returns
 * malloc'ed text or NULL after an error. */
static char *
leaf_text(struct conf_loader *ld, yaml_document_t *doc, const struct conf_where *w, const char *key,
          const struct conf_key *def, yaml_node_t *value)
{
    if (value->type == YAML_SCALAR_NODE)
        return sl_strdup(node_is_null(value) ? "" : (const char *)value->data.scalar.value);
    if (value->type == YAML_MAPPING_NODE || (def->type != KT_CIDR && !conf_type(def)->list)) {
        conf_fail(ld, w, key, "expected a single value, not %s", node_kind(value));
        return NULL;
    }
    char *text = sl_strdup("");
    for (yaml_node_item_t *it = value->data.sequence.items.start;
         it < value->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        struct conf_where iw = {w->file, item->start_mark.line + 1, NULL};
        const char *s;
        if (item->type != YAML_SCALAR_NODE) {
            conf_fail(ld, &iw, key, "list items must be single values, not %s", node_kind(item));
            free(text);
            return NULL;
        }
        s = (const char *)item->data.scalar.value;
        /* Check each item on its own so that an error points at its line. */
        if (def->type == KT_CIDR) {
            struct sl_cidr_list list;
            if (conf_cidr_parse(ld, &iw, key, s, &list) < 0) {
                free(text);
                return NULL;
            }
            sl_cidr_list_free(&list);
        }
        if (def->type == KT_PATTERNS && *s == '\0')
            continue; /* an empty pattern would match everything */
        char *t =
            sl_asprintf("%s%s%s", text, *text ? (def->type == KT_PATTERNS ? "\n" : ", ") : "", s);
        free(text);
        text = t;
    }
    return text;
}

/* What a key of the file is, from the map it is in. */
struct walk_key {
    bool want_map;              /* a section: walk its map */
    const struct conf_key *def; /* else a leaf */
    const char *origin_name;    /* origins.<name>.<leaf> */
    const char *bank_name;      /* policy_banks.<name>.<leaf> */
};

/* prefix: "" (top level), a section ("frontend"), a sub-section
 * ("scanners.clamd"), "origins", "origins.<name>", "policy_banks" or
 * "policy_banks.<name>". 0 and *wk_r, or -1 after the error. */
static int
walk_classify(struct conf_loader *ld, const struct conf_where *w, const char *prefix,
              const char *name, const char *key, struct walk_key *wk_r)
{
    memset(wk_r, 0, sizeof(*wk_r));
    if (*prefix == '\0') {
        if (conf_is_section(name)) {
            wk_r->want_map = true;
            return 0;
        }
        if (conf_key_find(conf_global_keys, conf_n_global_keys, name) != NULL)
            return conf_fail(ld, w, key,
                             "write nested maps in the file (\"%.*s:\" then \"%s:\"); the "
                             "dotted form is for -o",
                             (int)(strchr(name, '.') - name), name, strchr(name, '.') + 1);
        return conf_fail_unknown(ld, w, key, "section", NULL);
    }
    if (strcmp(prefix, "policy_banks") == 0) {
        wk_r->want_map = true;
        return conf_bank_get(ld, w, name) < 0 ? -1 : 0;
    }
    if (strncmp(prefix, "policy_banks.", 13) == 0) {
        wk_r->bank_name = prefix + 13;
        wk_r->def = conf_key_find(conf_bank_keys, conf_n_bank_keys, name);
        if (wk_r->def == NULL) {
            (void)conf_bank_set(ld, w, wk_r->bank_name, name, ""); /* reports the unknown key */
            return -1;
        }
        return 0;
    }
    if (strcmp(prefix, "origins") == 0) {
        wk_r->want_map = true;
        return conf_origin_get(ld, w, name) < 0 ? -1 : 0;
    }
    if (strncmp(prefix, "origins.", 8) == 0) {
        wk_r->origin_name = prefix + 8;
        wk_r->def = conf_key_find(conf_origin_keys, conf_n_origin_keys, name);
        if (wk_r->def == NULL)
            return conf_fail_unknown(ld, w, key, "key", wk_r->origin_name);
        return 0;
    }
    wk_r->def = conf_key_find(conf_global_keys, conf_n_global_keys, key);
    if (wk_r->def == NULL && conf_is_subsection(key))
        wk_r->want_map = true; /* scanners.clamd: */
    else if (wk_r->def == NULL)
        return conf_fail_unknown(ld, w, key, "key", NULL);
    return 0;
}

/* libyaml keeps both of a duplicated key: a silent last-wins would hide a
 * mistake. 0, or -1 after the error. */
static int
walk_duplicate(struct conf_loader *ld, yaml_document_t *doc, yaml_node_t *map,
               yaml_node_pair_t *pair, const struct conf_where *w, const char *key,
               const char *name)
{
    for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
        yaml_node_t *pk = yaml_document_get_node(doc, prev->key);
        if (pk->type == YAML_SCALAR_NODE && strcmp((const char *)pk->data.scalar.value, name) == 0)
            return conf_fail(ld, w, key, "duplicate key (first at line %zu)",
                             (size_t)pk->start_mark.line + 1);
    }
    return 0;
}

static int walk_map(struct conf_loader *ld, yaml_document_t *doc, const char *file,
                    yaml_node_t *map, const char *prefix);

/* One key: walks into a section, or sets a leaf. */
static int
walk_pair(struct conf_loader *ld, yaml_document_t *doc, const char *file, yaml_node_t *map,
          yaml_node_pair_t *pair, const char *prefix)
{
    yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
    yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
    struct conf_where w = {file, kn->start_mark.line + 1, NULL};
    struct walk_key wk;
    const char *name;
    char *key, *text;
    int ret;

    if (kn->type != YAML_SCALAR_NODE)
        return conf_fail(ld, &w, *prefix ? prefix : NULL, "keys must be plain names, not %s",
                         node_kind(kn));
    name = (const char *)kn->data.scalar.value;
    key = *prefix ? sl_asprintf("%s.%s", prefix, name) : sl_strdup(name);

    if (walk_duplicate(ld, doc, map, pair, &w, key, name) < 0 ||
        walk_classify(ld, &w, prefix, name, key, &wk) < 0) {
        ret = -1;
    } else if (wk.want_map) {
        if (node_is_null(vn))
            ret = 0; /* "frontend:" with everything commented out */
        else if (vn->type != YAML_MAPPING_NODE)
            ret = conf_fail(ld, &w, key, "expected a map of keys, not %s", node_kind(vn));
        else
            ret = walk_map(ld, doc, file, vn, key);
    } else if ((text = leaf_text(ld, doc, &w, key, wk.def, vn)) == NULL) {
        ret = -1;
    } else {
        if (wk.origin_name != NULL)
            ret = conf_origin_set(ld, &w, wk.origin_name, name, text);
        else if (wk.bank_name != NULL)
            ret = conf_bank_set(ld, &w, wk.bank_name, name, text);
        else
            ret = conf_value_set(ld, &w, key, wk.def, ld->config, text);
        free(text);
    }
    free(key);
    return ret;
}

static int
walk_map(struct conf_loader *ld, yaml_document_t *doc, const char *file, yaml_node_t *map,
         const char *prefix)
{
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++)
        if (walk_pair(ld, doc, file, map, pair, prefix) < 0)
            return -1;
    return 0;
}

/* Line number of a byte offset, for reader errors (bad UTF-8), which
 * libyaml reports by offset only. */
static size_t
line_of_offset(FILE *fp, size_t offset)
{
    size_t line = 1;
    int c;

    rewind(fp);
    for (size_t i = 0; i < offset && (c = getc(fp)) != EOF; i++)
        if (c == '\n')
            line++;
    return line;
}

static int
fail_yaml(struct conf_loader *ld, const char *file, FILE *fp, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "unknown error";
    char *where;
    int ret;

    if (parser->error == YAML_MEMORY_ERROR)
        sl_bug(__FILE__, __LINE__, "libyaml: out of memory");
    if (parser->error == YAML_READER_ERROR) {
        where = sl_asprintf("%s:%zu", file, line_of_offset(fp, parser->problem_offset));
        ret = conf_fail_at(ld, where, NULL, "cannot read the file: %s (byte %zu)", problem,
                           parser->problem_offset);
    } else {
        where = sl_asprintf("%s:%zu:%zu", file, (size_t)parser->problem_mark.line + 1,
                            (size_t)parser->problem_mark.column + 1);
        if (parser->context != NULL)
            ret = conf_fail_at(ld, where, NULL, "YAML syntax error: %s (%s at line %zu)", problem,
                               parser->context, (size_t)parser->context_mark.line + 1);
        else
            ret = conf_fail_at(ld, where, NULL, "YAML syntax error: %s", problem);
    }
    free(where);
    return ret;
}

/* The root of the first document: a map of sections, or nothing. */
static void
read_root(struct conf_loader *ld, yaml_document_t *doc, const char *file, yaml_node_t *root)
{
    if (root == NULL || node_is_null(root))
        return;
    if (root->type != YAML_MAPPING_NODE) {
        struct conf_where w = {file, root->start_mark.line + 1, NULL};
        conf_fail(ld, &w, NULL, "expected a map of sections (frontend:, origins:, ...), not %s",
                  node_kind(root));
        return;
    }
    (void)walk_map(ld, doc, file, root, "");
}

int
conf_yaml_read(struct conf_loader *ld, const char *file, FILE *fp)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    int ret = -1;

    ld->config->path = sl_strdup(file);

    if (!yaml_parser_initialize(&parser))
        sl_bug(__FILE__, __LINE__, "yaml_parser_initialize");
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        fail_yaml(ld, file, fp, &parser);
        goto out;
    }
    root = yaml_document_get_root_node(&doc);
    read_root(ld, &doc, file, root);
    yaml_document_delete(&doc);
    if (ld->error != NULL)
        goto out;
    if (root != NULL) {
        /* A second document would be ignored silently: refuse it. */
        if (!yaml_parser_load(&parser, &doc)) {
            fail_yaml(ld, file, fp, &parser);
            goto out;
        }
        if (yaml_document_get_root_node(&doc) != NULL) {
            struct conf_where w = {file, doc.start_mark.line + 1, NULL};
            conf_fail(ld, &w, NULL, "only one YAML document is allowed");
        }
        yaml_document_delete(&doc);
        if (ld->error != NULL)
            goto out;
    }
    ret = 0;
out:
    yaml_parser_delete(&parser);
    return ret;
}
