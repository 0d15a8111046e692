/* fuzz_peft.c -- libFuzzer target: peft_config_parse() (adapter_config.json)
 * on arbitrary bytes, then peft_config_module() on a few module names.
 *
 * Seed files: every adapter_config.json of tests/fixtures/peft, good and
 * malformed, and one with rank/alpha patterns of every kind (gen_peft.py).
 * seeds: tests/fuzz-seeds/peft
 *
 * A parsed config must hold a rank >= 1 and finite alpha, and every module
 * must get a rank >= 1 and a scale that is a number.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/formats/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const modules[] = {"model.layers.0.self_attn.q_proj", "v_proj", "", "a.b.",
                                          "transformer.h.11.attn.c_attn"};
    struct peft_config cfg;
    struct err e;
    int64_t r;
    double alpha, s;

    if (size > (1u << 20))
        return 0;
    if (peft_config_parse((const char *)data, size, &cfg, &e) == ERR_OK) {
        ERR_ASSERT(cfg.r >= 1 && isfinite(cfg.lora_alpha));
        for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
            peft_config_module(&cfg, modules[i], &r, &alpha, &s);
            ERR_ASSERT(r >= 1 && isfinite(alpha) && !isnan(s));
        }
    }
    peft_config_free(&cfg);
    return 0;
}
