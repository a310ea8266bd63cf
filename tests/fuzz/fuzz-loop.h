/*
 * One main-loop pass for fuzz targets whose code under test waits on
 * descriptors (chardev connections, sockets): targets linked with
 * fuzz_loop_exe (tests/fuzz/meson.build) have vireo's
 * main_loop_set_fd_handler() and main_loop_schedule() calls land here
 * instead of in the real main loop, which never runs in a fuzz target, and
 * fuzz_loop_pump() does what the loop's iterations would: runs the read
 * and write handlers of ready descriptors and the scheduled callbacks,
 * until nothing is left to do.
 */
#ifndef VIREO_FUZZ_LOOP_H
#define VIREO_FUZZ_LOOP_H

/* Returns how many handlers and callbacks ran (at most @max_rounds passes). */
unsigned fuzz_loop_pump(unsigned max_rounds);

#endif
