/* log.h -- one log format for the whole process (only server/ logs).
 *
 * Lines go to stderr in logfmt: `ts=2026-11-30T10:12:00.123Z level=info
 * mod=http msg="..." key=value ...`. Each line is built in a local buffer and
 * written with one write(2), so lines from different threads never
 * interleave. The level is process-wide (an atomic); the LOG_* macros test it
 * before evaluating their arguments. Never log request bodies or tensor data.
 *
 * Batched lines (LOG_BATCHED: the access log, one line per request) are
 * the same lines, collected in a process-wide buffer and written together,
 * at most 50 ms after the first of them, or before any unbatched line (the
 * order of lines is the order of the calls), or on log_flush. A process
 * that dies without log_flush loses at most those 50 ms of batched lines.
 */
#ifndef SERVER_LOG_H
#define SERVER_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Set the minimum level written. Thread-safe. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_from_name(const char *s);

/* Write one line: `fmt` is the logfmt tail after `mod=...` (e.g.
 * "msg=\"started\" port=8080"). Thread-safe. */
void log_write(enum log_level level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* log_write, batched (see the top). Thread-safe. */
void log_write_batched(enum log_level level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write the batched lines out now. Thread-safe. */
void log_flush(void);

#define LOG_AT(level, mod, ...)                     \
    do {                                            \
        if ((level) >= log_get_level())             \
            log_write((level), (mod), __VA_ARGS__); \
    } while (0)
#define LOG_BATCHED(level, mod, ...)                        \
    do {                                                    \
        if ((level) >= log_get_level())                     \
            log_write_batched((level), (mod), __VA_ARGS__); \
    } while (0)
#define LOG_DEBUG(mod, ...) LOG_AT(LOG_LEVEL_DEBUG, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...)  LOG_AT(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...)  LOG_AT(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) LOG_AT(LOG_LEVEL_ERROR, mod, __VA_ARGS__)

#endif /* SERVER_LOG_H */
