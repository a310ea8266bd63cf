/*
 * One main-loop pass for fuzz targets whose code under test waits on
 * descriptors (chardev connections, sockets): targets linked with
 * fuzz_loop_link_args (tests/fuzz/meson.build) see every
 * main_loop_set_fd_handler() and main_loop_schedule() call of vireo's code
 * (the real main loop still gets them too, but never runs here), and
 * fuzz_loop_pump() does what the loop's iterations would: runs the read
 * handlers of readable descriptors and the scheduled callbacks, until
 * nothing is left to do.
 */
#ifndef VIREO_FUZZ_LOOP_H
#define VIREO_FUZZ_LOOP_H

/* Returns how many handlers and callbacks ran (at most @max_rounds passes). */
unsigned fuzz_loop_pump(unsigned max_rounds);

#endif
