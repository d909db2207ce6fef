/* Typed field getters shared by the config.json parser files. A missing or null field is not an
 * error (the output is left alone); a field of the wrong type is, and the message names it. */
#ifndef JL_CONFIG_PRIV_H
#define JL_CONFIG_PRIV_H

#include "jl-config.h"

#define BAD(err, ...) jl_fail(err, "invalid_argument", "config.json: " __VA_ARGS__)

int jl_cfg_get_obj(json_t *o, const char *k, const char *where, json_t **out, struct jl_err *err);
int jl_cfg_get_arr(json_t *o, const char *k, const char *where, json_t **out, struct jl_err *err);
int jl_cfg_get_str(json_t *o, const char *k, const char *where, const char **out, struct jl_err *err);
int jl_cfg_get_bool(json_t *o, const char *k, const char *where, bool *out, struct jl_err *err);
int jl_cfg_get_int(json_t *o, const char *k, const char *where, int64_t min, int64_t *out, struct jl_err *err);
/* String array into a NULL-terminated vector pointing into the json tree (caller frees the vector). */
int jl_cfg_str_array(json_t *a, const char *where, const char ***out, size_t *n, struct jl_err *err);

#endif
