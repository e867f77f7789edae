/*
 * One side of Chip Authentication version 2 (BSI TR-03110-2; the data objects of TR-03110-3 B.2) run
 * by OpenPACE's libeac, for tests/test_ca_interop.py. libeac runs version 2 only: the chip answers
 * a nonce and an authentication token.
 *
 *   ca_harness picc <protocol OID> <parameter ID> <private key hex> <public key hex>
 *       libeac is the chip, holding the static key pair. Each stdin line is a terminal's ephemeral
 *       public key (hex); the answer is "NONCE <hex> TOKEN <hex>", from CA_STEP4 and CA_STEP5.
 *
 *   ca_harness pcd <protocol OID> <parameter ID> <chip public key hex>
 *       libeac is the terminal. It prints "PK <hex>", its ephemeral public key (TA_STEP3), then reads
 *       one line "<nonce hex> <token hex>" (the chip's answer) and prints "OK" when CA_STEP6
 *       verifies the token, "ERR <why>" otherwise.
 *
 * libeac does all the cryptography; this file only moves hex strings.
 */

#include <eac/ca.h>
#include <eac/eac.h>
#include <eac/objects.h>
#include <eac/ta.h>
#include <openssl/buffer.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 4096

static void fail(const char *why)
{
    printf("ERR %s\n", why);
    fflush(stdout);
    exit(1);
}

static BUF_MEM *from_hex(const char *hex)
{
    size_t n = strlen(hex) / 2;
    BUF_MEM *b = BUF_MEM_new();
    if (!b || !BUF_MEM_grow(b, n))
        fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            fail("bad hex");
        b->data[i] = (char) v;
    }
    b->length = n;
    return b;
}

static void print_hex(const BUF_MEM *b)
{
    for (size_t i = 0; i < b->length; i++)
        printf("%02X", (unsigned char) b->data[i]);
}

static EAC_CTX *context(const char *oid, const char *parameter_id)
{
    EAC_init();
    int nid = OBJ_txt2nid(oid);
    if (nid == NID_undef)
        fail("unknown protocol OID");
    EAC_CTX *ctx = EAC_CTX_new();
    if (!ctx || !EAC_CTX_init_ca(ctx, nid, atoi(parameter_id)))
        fail("EAC_CTX_init_ca");
    return ctx;
}

static int read_line(char *line)
{
    if (!fgets(line, MAX_LINE, stdin))
        return 0;
    line[strcspn(line, "\r\n")] = 0;
    return 1;
}

static int picc(char **argv)
{
    EAC_CTX *ctx = context(argv[2], argv[3]);
    BUF_MEM *private_key = from_hex(argv[4]), *public_key = from_hex(argv[5]);
    if (!CA_set_key(ctx, (unsigned char *) private_key->data, private_key->length,
                    (unsigned char *) public_key->data, public_key->length))
        fail("CA_set_key");
    char line[MAX_LINE];
    while (read_line(line)) {
        BUF_MEM *terminal = from_hex(line), *nonce = NULL, *token = NULL;
        if (!CA_STEP4_compute_shared_secret(ctx, terminal))
            fail("CA_STEP4_compute_shared_secret");
        if (!CA_STEP5_derive_keys(ctx, terminal, &nonce, &token))
            fail("CA_STEP5_derive_keys");
        printf("NONCE ");
        print_hex(nonce);
        printf(" TOKEN ");
        print_hex(token);
        printf("\n");
        fflush(stdout);
        BUF_MEM_free(terminal);
        BUF_MEM_free(nonce);
        BUF_MEM_free(token);
    }
    EAC_CTX_clear_free(ctx);
    return 0;
}

static int pcd(char **argv)
{
    EAC_CTX *ctx = context(argv[2], argv[3]);
    BUF_MEM *chip = from_hex(argv[4]);
    BUF_MEM *own = TA_STEP3_generate_ephemeral_key(ctx);
    if (!own)
        fail("TA_STEP3_generate_ephemeral_key");
    BUF_MEM *encoded = CA_STEP2_get_eph_pubkey(ctx);
    if (!encoded)
        fail("CA_STEP2_get_eph_pubkey");
    printf("PK ");
    print_hex(encoded);
    printf("\n");
    fflush(stdout);
    char line[MAX_LINE];
    if (!read_line(line))
        fail("no answer");
    char *space = strchr(line, ' ');
    if (!space)
        fail("expected '<nonce> <token>'");
    *space = 0;
    BUF_MEM *nonce = from_hex(line), *token = from_hex(space + 1);
    if (!CA_STEP4_compute_shared_secret(ctx, chip))
        fail("CA_STEP4_compute_shared_secret");
    if (!CA_STEP6_derive_keys(ctx, nonce, token))
        fail("CA_STEP6_derive_keys: the token does not verify");
    printf("OK\n");
    fflush(stdout);
    EAC_CTX_clear_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "picc"))
        return picc(argv);
    if (argc == 5 && !strcmp(argv[1], "pcd"))
        return pcd(argv);
    fprintf(stderr, "usage: ca_harness picc OID ID PRIVATE PUBLIC | pcd OID ID CHIP_PUBLIC\n");
    return 2;
}
