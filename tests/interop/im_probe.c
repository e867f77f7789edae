/*
 * What OpenPACE's libeac calls PACE-ECDH-IM, run on both sides in one process, for
 * tests/test_openpace_interop.py: it shows why libeac cannot check our Integrated Mapping.
 *
 *   im_probe CARD_ACCESS_HEX TERMINAL_CAN CHIP_CAN
 *
 * prints "DEFAULT accepted|refused" (does libeac take an IM PACEInfo at its default TR-03110
 * version?), then, at TR-03110 version 2.01, "MAPPING <terminal bytes> <chip bytes>" (the lengths of
 * the mapping data each side sends) and "RESULT agreed|refused": whether the chip accepted the
 * terminal's authentication token. ICAO Doc 9303-11 section 4.4.3.3.2 has the chip send no mapping
 * data, and a run with two different passwords must never agree.
 */

#include <eac/eac.h>
#include <eac/objects.h>
#include <eac/pace.h>
#include <openssl/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t unhex(const char *hex, unsigned char *out, size_t max)
{
    size_t n = strlen(hex) / 2;
    if (n > max)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            exit(2);
        out[i] = (unsigned char) v;
    }
    return n;
}

static EAC_CTX *context(const unsigned char *ca, size_t n, int old_version)
{
    EAC_CTX *c = EAC_CTX_new();
    if (!c)
        exit(3);
    if (old_version)
        c->tr_version = EAC_TR_VERSION_2_01;
    if (!EAC_CTX_init_ef_cardaccess(ca, n, c) || !c->pace_ctx) {
        EAC_CTX_clear_free(c);
        return NULL;
    }
    return c;
}

int main(int argc, char **argv)
{
    unsigned char ca[512];
    size_t n;
    EAC_CTX *probe, *pcd, *picc;
    PACE_SEC *pcd_secret, *picc_secret;
    BUF_MEM *z, *pcd_map, *picc_map, *pcd_eph, *picc_eph, *token;
    int agreed;

    if (argc != 4)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    n = unhex(argv[1], ca, sizeof ca);
    EAC_init();
    probe = context(ca, n, 0);
    printf("DEFAULT %s\n", probe ? "accepted" : "refused");
    EAC_CTX_clear_free(probe);
    pcd = context(ca, n, 1);
    picc = context(ca, n, 1);
    if (!pcd || !picc) {
        printf("RESULT unsupported\n");
        return 0;
    }
    pcd_secret = PACE_SEC_new(argv[2], strlen(argv[2]), PACE_CAN);
    picc_secret = PACE_SEC_new(argv[3], strlen(argv[3]), PACE_CAN);
    z = PACE_STEP1_enc_nonce(picc, picc_secret);
    if (!z || !PACE_STEP2_dec_nonce(pcd, pcd_secret, z))
        return 4;
    pcd_map = PACE_STEP3A_generate_mapping_data(pcd);
    picc_map = PACE_STEP3A_generate_mapping_data(picc);
    if (!pcd_map || !picc_map)
        return 4;
    printf("MAPPING %zu %zu\n", pcd_map->length, picc_map->length);
    if (!PACE_STEP3A_map_generator(picc, pcd_map) || !PACE_STEP3A_map_generator(pcd, picc_map))
        return 4;
    pcd_eph = PACE_STEP3B_generate_ephemeral_key(pcd);
    picc_eph = PACE_STEP3B_generate_ephemeral_key(picc);
    if (!pcd_eph || !picc_eph)
        return 4;
    agreed = PACE_STEP3B_compute_shared_secret(pcd, picc_eph) && PACE_STEP3B_compute_shared_secret(picc, pcd_eph)
             && PACE_STEP3C_derive_keys(pcd) && PACE_STEP3C_derive_keys(picc);
    token = agreed ? PACE_STEP3D_compute_authentication_token(pcd, picc_eph) : NULL;
    agreed = token && PACE_STEP3D_verify_authentication_token(picc, token) == 1;
    printf("RESULT %s\n", agreed ? "agreed" : "refused");
    BUF_MEM_free(z);
    BUF_MEM_free(pcd_map);
    BUF_MEM_free(picc_map);
    BUF_MEM_free(pcd_eph);
    BUF_MEM_free(picc_eph);
    BUF_MEM_free(token);
    PACE_SEC_clear_free(pcd_secret);
    PACE_SEC_clear_free(picc_secret);
    EAC_CTX_clear_free(pcd);
    EAC_CTX_clear_free(picc);
    EAC_cleanup();
    return 0;
}
