#ifndef GUISE_GRADSTATE_H
#define GUISE_GRADSTATE_H

// The autograd recording switch, one per thread of execution.
//
// Ops are recorded on the thread that calls them; the pool's workers only run kernel loops and
// never record, so a per-thread switch is exact: one thread's noGrad (an inference in a batch run
// or a server) cannot turn off recording in another thread's gradient computation. It is read for
// every op, so it is a thread-local int behind inline accessors (initial-exec: one load off the
// thread pointer, no __tls_get_addr call).

extern _Thread_local int guise_grad_disabled_depth __attribute__((tls_model("initial-exec")));

// How many nested noGrad scopes this thread is inside (0: recording is on).
static inline int guise_grad_disabled(void) { return guise_grad_disabled_depth; }
static inline void guise_grad_set_disabled(int depth) { guise_grad_disabled_depth = depth; }

#endif
