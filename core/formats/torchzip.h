/* torchzip.h -- PyTorch torch.save zip checkpoints (docs/checkpoint-formats.md, PyTorch zip files).
 *
 * The loader behind ckpt_open() for CKPT_FORMAT_TORCH_ZIP is
 * tz__ckpt_load() (declared in core/ckpt_int.h). It opens the file, parses the
 * zip (core/zip.h), hands npz-layout zips (every member a "*.npy" without a
 * folder) to the npz reader, checks the archive folder, refuses TorchScript,
 * unpickles data.pkl with the restricted unpickler (core/pickle.h), checks
 * every referenced storage record against the size the pickle implies
 * before reading it, lists the tensors in pickle order under their dotted
 * paths from the root ("optimizer_states.0.state.3.exp_avg"), marks aliases
 * (same storage, dtype, offset, shape and strides) and locates the model
 * weights (Training checkpoints; ckpt_model_prefix(), in_model). Tensor bytes are read on
 * demand with pread: contiguous little-endian views are read straight into
 * the caller's buffer; other views read their storage extent (at most
 * max_tensor_bytes, else limit_exceeded) and are gathered in C order,
 * byte-swapped for big-endian archives; deflated storages are inflated as
 * they stream from the file, per read.
 *
 * The helpers below expose the pure decisions of the loader for tests.
 * Stateless: thread-safe.
 */
#ifndef CORE_TORCHZIP_H
#define CORE_TORCHZIP_H

#include <stddef.h>

#include "core/formats/pickle.h"
#include "core/formats/zip.h"

/* 1 if `z` has the npz layout: at least one member, every name ends in
 * ".npy" and none contains '/'. Cannot fail. */
int tz_is_npz_layout(const struct zip_archive *z);

/* The model weights' prefix inside `root` (Training checkpoints): "" when the root is a dict
 * of tensors, "<key>." for the first of state_dict, model_state_dict, model,
 * module, net, network (then state_dict_ema, model_ema) whose value is a dict
 * of mostly tensors, else NULL (rule 3: every tensor outside optimizer /
 * scheduler / ... subtrees). Returns a static string or a key of `root`
 * (borrowed) through *key (NULL for ""); *rule gets 1, 2 or 3. */
void tz_locate_weights(const struct pkl_value *root, const char **key, int *rule);

/* 1 if a tensor at dotted `path` lies under an excluded subtree of rule 3
 * (a component equal to optimizer, optimizer_state_dict, optimizer_states,
 * optim, lr_scheduler, lr_schedulers, scheduler, scaler, rng_state,
 * callbacks or loops). Cannot fail. */
int tz_path_excluded(const char *path);

#endif /* CORE_TORCHZIP_H */
