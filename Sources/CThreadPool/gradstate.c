#include "gradstate.h"

_Thread_local int guise_grad_disabled_depth __attribute__((tls_model("initial-exec"))) = 0;
