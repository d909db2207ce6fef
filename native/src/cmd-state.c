/* `state ID`: the OCI state JSON on stdout. */
#include "jl-cli.h"

#include <stdio.h>
#include <string.h>

int jl_cmd_state(struct jl_cli *c, struct jl_err *err) {
  if (c->argc != 1) return jl_fail(err, "invalid_argument", "usage: jiffy-launch state ID");
  struct jl_state st;
  if (jl_state_read(c->root, c->argv[0], &st, err) < 0) return -1;
  const char *status = jl_state_status(&st);
  json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:o}", "ociVersion", "1.0.2", "id", st.id, "status", status,
                        "pid", strcmp(status, "stopped") == 0 ? 0 : (int)st.pid, "bundle", st.bundle,
                        "annotations", st.annotations ? st.annotations : json_object());
  if (!j) return jl_fail(err, "internal", "encode state of %s", st.id);
  char *s = json_dumps(j, JSON_INDENT(2));
  json_decref(j);
  if (!s) return jl_fail(err, "internal", "encode state of %s", st.id);
  printf("%s\n", s);
  free(s);
  return 0;
}
