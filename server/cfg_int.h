/* cfg_int.h -- internal to the settings of `farmsd serve` (server/cfg*.c),
 * not for other modules: what cfg.c (flags, defaults, cfg_load) and
 * cfg_env.c (the FARMSD_* environment variables) share.
 *
 * Ownership and thread-safety: as cfg.h; the functions fill the caller's
 * struct cfg (strings it owns, freed by cfg_free) on the main thread,
 * before any other thread starts.
 */
#ifndef SERVER_CFG_INT_H
#define SERVER_CFG_INT_H

#include "core/err.h"
#include "server/cfg.h"

/* --- Flags (cfg.c) ------------------------------------------------------ */

/* One setting by its flag name (without "--"), from a flag or the environment. */
enum err_code cfg__apply(struct cfg *c, const char *key, const char *v, struct err *e);

/* Allow path ingestion under `dir` (resolved), from --allow-root or one
 * entry of FARMSD_ALLOW_ROOTS. */
enum err_code cfg__add_root(struct cfg *c, const char *dir, struct err *e);

/* --- Environment (cfg_env.c) -------------------------------------------- */

/* Apply every FARMSD_* variable that is set and not empty, as its flag
 * would be; an error names the variable and its value (cfg__env_blame). */
enum err_code cfg__from_env(struct cfg *c, struct err *e);

/* Rewrite the error of a setting that came from the environment as
 * "VAR=value: why", dropping the flag's own name ("--lease: ") from why.
 * Cannot fail. */
void cfg__env_blame(struct err *e, const char *var, const char *flag, const char *value);

#endif /* SERVER_CFG_INT_H */
