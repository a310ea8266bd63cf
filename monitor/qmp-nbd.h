/* vireo's NBD server commands (monitor/qmp-nbd.c). */
#ifndef VIREO_MONITOR_QMP_NBD_H
#define VIREO_MONITOR_QMP_NBD_H

/* At exit, before the block nodes close: stop the NBD server (big lock held). */
void qmp_nbd_cleanup(void);

#endif
