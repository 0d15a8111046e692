/* st_write_int.h -- what the safetensors writer (st_write.c) shares with the
 * torch zip writer (tz_write.c). Internal to core/formats: not a public
 * header. Same ownership and thread-safety as st_write.h: one thread per
 * writer, nothing kept.
 */
#ifndef CORE_ST_WRITE_INT_H
#define CORE_ST_WRITE_INT_H

#include <stdio.h>

#include "core/err.h"

/* What both writers do last with their file `*f` at `path`: flush it unless
 * `rc`, the writer's result so far, is an error, then close it (*f = NULL)
 * and remove it if anything failed. Returns `rc`, or ERR_IO if flushing or
 * closing failed. */
enum err_code st_file_finish(FILE **f, const char *path, enum err_code rc, struct err *e);

/* What both writers' abort does with their file: close `*f` and remove the
 * file at `*path` if it is open, free `*path`; both end NULL. */
void st_file_discard(FILE **f, char **path);

#endif /* CORE_ST_WRITE_INT_H */
