#include "jl-cli.h"
int jl_cmd_serve(struct jl_cli *c, struct jl_err *err) { (void)c; return jl_fail(err, "internal", "todo"); }
