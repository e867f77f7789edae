/*
 * One side of PACE (ICAO Doc 9303-11 section 4.4) run by OpenPACE's libeac, for the interoperability
 * tests in tests/test_openpace_interop.py. The other side is ektp_card, driving this program over a
 * line protocol of hex APDUs on stdin and stdout.
 *
 *   pace_harness pcd  --type can|pin|puk|mrz --password P [--parameter-id] [--then APDU]...
 *       libeac is the terminal. Each command goes out as "C <hex>"; the driver answers with one line,
 *       the response APDU in hex. The harness reads EF.CardAccess (SFI 1C), prints "INFO <protocol
 *       OID> <parameter ID>" as libeac parsed it, runs MSE:Set AT and the four GENERAL AUTHENTICATE
 *       steps, then sends each --then APDU under secure messaging and prints "R <hex>": the response
 *       as it verified and decrypted it. "DONE" ends a good run; "ERR <why>" (exit 1) a failed one.
 *
 *   pace_harness picc --card-access HEX --type ... --password P --file HEX
 *       libeac is the chip. Each stdin line is a command APDU, answered by one stdout line. Before
 *       PACE the chip serves EF.CardAccess (READ BINARY by SFI 1C) and SELECT; after it every command
 *       must carry secure messaging, and READ BINARY serves the --file bytes. Each unwrapped command
 *       is logged on stderr as "PLAIN <hex>". End of input ends the program.
 *
 * libeac does the cryptography (password encoding, K_pi, nonce, Generic Mapping, key agreement,
 * KDF, tokens, SM encryption and MAC with its own SSC); this file only formats the APDUs and the
 * secure messaging data objects DO87/DO85, DO97, DO99 and DO8E (ICAO Doc 9303-11 section 9.8).
 */

#include <eac/eac.h>
#include <eac/objects.h>
#include <eac/pace.h>
#include <openssl/buffer.h>
#include <openssl/objects.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_APDU 4096
#define SW_OK 0x9000

static EAC_CTX *ctx;
static PACE_SEC *secret;
static enum s_type secret_type;

/* ---- small buffers ------------------------------------------------------------------------------ */

typedef struct {
    unsigned char d[MAX_APDU];
    size_t n;
} bytes;

static void fail(const char *fmt, ...)
{
    va_list ap;
    printf("ERR ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

static void put(bytes *b, const void *d, size_t n)
{
    if (!n)
        return;
    if (b->n + n > sizeof b->d)
        fail("buffer overflow");
    memcpy(b->d + b->n, d, n);
    b->n += n;
}

static void put_byte(bytes *b, unsigned v)
{
    unsigned char c = (unsigned char) v;
    put(b, &c, 1);
}

/* BER-TLV with a one- or two-byte tag and a definite length of up to two bytes (ISO/IEC 7816-4). */
static void put_tlv(bytes *b, unsigned tag, const unsigned char *v, size_t n)
{
    if (tag > 0xFF)
        put_byte(b, tag >> 8);
    put_byte(b, tag & 0xFF);
    if (n < 0x80) {
        put_byte(b, n);
    } else if (n < 0x100) {
        put_byte(b, 0x81);
        put_byte(b, n);
    } else {
        put_byte(b, 0x82);
        put_byte(b, n >> 8);
        put_byte(b, n & 0xFF);
    }
    put(b, v, n);
}

/* The next TLV at *pos; 0 if malformed. */
static int next_tlv(const unsigned char *d, size_t n, size_t *pos, unsigned *tag,
                    const unsigned char **value, size_t *len)
{
    size_t p = *pos, l;
    if (p >= n)
        return 0;
    *tag = d[p++];
    if ((*tag & 0x1F) == 0x1F) {
        if (p >= n)
            return 0;
        *tag = (*tag << 8) | d[p++];
    }
    if (p >= n)
        return 0;
    l = d[p++];
    if (l == 0x81 || l == 0x82) {
        size_t k = l & 0x7F;
        if (p + k > n)
            return 0;
        l = 0;
        while (k--)
            l = (l << 8) | d[p++];
    } else if (l > 0x80) {
        return 0;
    }
    if (p + l > n)
        return 0;
    *value = d + p;
    *len = l;
    *pos = p + l;
    return 1;
}

/* The value of `tag` among the TLVs of d, or NULL. */
static const unsigned char *find_tlv(const unsigned char *d, size_t n, unsigned tag, size_t *len)
{
    size_t pos = 0;
    unsigned t;
    const unsigned char *v;
    while (next_tlv(d, n, &pos, &t, &v, len))
        if (t == tag)
            return v;
    return NULL;
}

static BUF_MEM *to_buf(const unsigned char *d, size_t n)
{
    BUF_MEM *m = BUF_MEM_new();
    if (!m || !BUF_MEM_grow(m, n ? n : 1))
        fail("out of memory");
    memcpy(m->data, d, n);
    m->length = n;
    return m;
}

static int unhex(const char *s, bytes *out)
{
    size_t len = strlen(s);
    out->n = 0;
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
        len--;
    if (len % 2 || len / 2 > sizeof out->d)
        return 0;
    for (size_t i = 0; i < len; i += 2) {
        unsigned v;
        if (sscanf(s + i, "%2x", &v) != 1)
            return 0;
        out->d[out->n++] = (unsigned char) v;
    }
    return 1;
}

static void print_hex(const char *prefix, const unsigned char *d, size_t n)
{
    printf("%s", prefix);
    for (size_t i = 0; i < n; i++)
        printf("%02X", d[i]);
    printf("\n");
    fflush(stdout);
}

static int read_line_hex(bytes *out)
{
    static char line[2 * MAX_APDU + 8];
    if (!fgets(line, sizeof line, stdin))
        return 0;
    if (!unhex(line, out))
        fail("not a hex line: %.40s", line);
    return 1;
}

/* ---- secure messaging with libeac's keys and SSC (ICAO Doc 9303-11 section 9.8) ------------------ */

static BUF_MEM *padded(const unsigned char *d, size_t n)
{
    BUF_MEM *plain = to_buf(d, n), *out = EAC_add_iso_pad(ctx, plain);
    BUF_MEM_free(plain);
    if (!out)
        fail("EAC_add_iso_pad failed");
    return out;
}

/* The 8-byte MAC over SSC || pad(data): EAC_authenticate puts the SSC in front itself. */
static void mac_of(const unsigned char *d, size_t n, bytes *mac)
{
    BUF_MEM *p = padded(d, n), *m = EAC_authenticate(ctx, p);
    if (!m)
        fail("EAC_authenticate failed");
    mac->n = 0;
    put(mac, m->data, m->length);
    BUF_MEM_free(p);
    BUF_MEM_clear_free(m);
}

static int mac_ok(const unsigned char *d, size_t n, const unsigned char *mac, size_t mac_len)
{
    BUF_MEM *p = padded(d, n), *m = to_buf(mac, mac_len);
    int ok = EAC_verify_authentication(ctx, p, m) == 1;
    BUF_MEM_free(p);
    BUF_MEM_free(m);
    return ok;
}

/* DO87 (01 || cryptogram) for an even INS, DO85 (cryptogram) for an odd one. */
static void put_cryptogram(bytes *out, unsigned ins, const unsigned char *d, size_t n)
{
    BUF_MEM *p, *e;
    bytes v = {.n = 0};
    if (!n)
        return;
    p = padded(d, n);
    e = EAC_encrypt(ctx, p);
    if (!e)
        fail("EAC_encrypt failed");
    if (!(ins & 1))
        put_byte(&v, 0x01);
    put(&v, e->data, e->length);
    put_tlv(out, (ins & 1) ? 0x85 : 0x87, v.d, v.n);
    BUF_MEM_clear_free(p);
    BUF_MEM_free(e);
}

/* Decrypt the value of DO87 or DO85 into out; 0 on a bad indicator, cryptogram or padding. */
static int take_cryptogram(unsigned tag, const unsigned char *v, size_t n, bytes *out)
{
    BUF_MEM *c, *p, *u;
    if (tag == 0x87) {
        if (!n || v[0] != 0x01)
            return 0;
        v++;
        n--;
    }
    c = to_buf(v, n);
    p = EAC_decrypt(ctx, c);
    BUF_MEM_free(c);
    if (!p)
        return 0;
    u = EAC_remove_iso_pad(p);
    BUF_MEM_clear_free(p);
    if (!u)
        return 0;
    put(out, u->data, u->length);
    BUF_MEM_clear_free(u);
    return 1;
}

/* A short plain command APDU: header, data, Le (case 1 to 4). */
typedef struct {
    unsigned char cla, ins, p1, p2;
    bytes data;
    int has_le;
    unsigned le;
} command;

static int parse_command(const bytes *a, command *c)
{
    if (a->n < 4)
        return 0;
    c->cla = a->d[0];
    c->ins = a->d[1];
    c->p1 = a->d[2];
    c->p2 = a->d[3];
    c->data.n = 0;
    c->has_le = 0;
    if (a->n == 4)
        return 1;
    if (a->n == 5) {
        c->has_le = 1;
        c->le = a->d[4];
        return 1;
    }
    if (a->d[4] == 0 || a->n < 5u + a->d[4] || a->n > 6u + a->d[4])
        return 0;
    put(&c->data, a->d + 5, a->d[4]);
    if (a->n == 6u + a->d[4]) {
        c->has_le = 1;
        c->le = a->d[a->n - 1];
    }
    return 1;
}

/* Terminal: protect a plain command. */
static void wrap_command(const command *c, bytes *out)
{
    bytes body = {.n = 0}, macin = {.n = 0}, mac;
    unsigned char header[4] = {c->cla | 0x0C, c->ins, c->p1, c->p2};
    BUF_MEM *h;

    if (!EAC_increment_ssc(ctx))
        fail("EAC_increment_ssc failed");
    put_cryptogram(&body, c->ins, c->data.d, c->data.n);
    if (c->has_le)
        put_tlv(&body, 0x97, (const unsigned char[]){(unsigned char) c->le}, 1);
    h = padded(header, 4);
    put(&macin, h->data, h->length);
    BUF_MEM_free(h);
    put(&macin, body.d, body.n);
    mac_of(macin.d, macin.n, &mac);
    put_tlv(&body, 0x8E, mac.d, mac.n);
    if (body.n > 255)
        fail("protected command too long for a short APDU");
    out->n = 0;
    put(out, header, 4);
    put_byte(out, body.n);
    put(out, body.d, body.n);
    put_byte(out, 0x00);
}

/* Both ends: split [DO87|DO85] [DO97|DO99] DO8E, check the MAC over what precedes DO8E (after
 * `prefix`, the padded header of a command) and decrypt. *second gets DO97 / DO99's value. */
static int unwrap_objects(const unsigned char *prefix, size_t prefix_len, const unsigned char *d,
                          size_t n, unsigned second_tag, bytes *plain, bytes *second)
{
    size_t pos = 0, start, len, crypt_len = 0;
    unsigned tag, crypt_tag = 0;
    const unsigned char *v, *crypt = NULL;
    bytes macin = {.n = 0};

    second->n = 0;
    for (;;) {
        start = pos;
        if (!next_tlv(d, n, &pos, &tag, &v, &len))
            return 0;
        if (tag == 0x8E)
            break;
        if ((tag == 0x87 || tag == 0x85) && !crypt && !second->n) {
            crypt = v;
            crypt_len = len;
            crypt_tag = tag;
        } else if (tag == second_tag && !second->n) {
            put(second, v, len);
        } else {
            return 0;
        }
    }
    if (pos != n || len != 8)
        return 0;
    put(&macin, prefix, prefix_len);
    put(&macin, d, start);
    if (!mac_ok(macin.d, macin.n, v, len))
        return 0;
    plain->n = 0;
    return !crypt || take_cryptogram(crypt_tag, crypt, crypt_len, plain);
}

/* ---- libeac set-up ----------------------------------------------------------------------------- */

static enum s_type parse_type(const char *s)
{
    if (!strcmp(s, "mrz"))
        return PACE_MRZ;
    if (!strcmp(s, "can"))
        return PACE_CAN;
    if (!strcmp(s, "pin"))
        return PACE_PIN;
    if (!strcmp(s, "puk"))
        return PACE_PUK;
    fail("unknown password type %s", s);
    return PACE_SEC_UNDEF;
}

static void init_context(const bytes *card_access, const char *password)
{
    ctx = EAC_CTX_new();
    if (!ctx || !EAC_CTX_init_ef_cardaccess(card_access->d, card_access->n, ctx) || !ctx->pace_ctx)
        fail("libeac could not initialise PACE from EF.CardAccess");
    secret = PACE_SEC_new(password, strlen(password), secret_type);
    if (!secret)
        fail("libeac refused the password");
}

/* The content octets of the protocol OID libeac chose, as DO80 of MSE:Set AT carries them. */
static const unsigned char *protocol_oid(size_t *len)
{
    const ASN1_OBJECT *obj = OBJ_nid2obj(ctx->pace_ctx->protocol);
    if (!obj)
        fail("no OID for the PACE protocol");
    *len = OBJ_length(obj);
    return OBJ_get0_data(obj);
}

/* ---- libeac as the terminal --------------------------------------------------------------------- */

static unsigned exchange(const bytes *cmd, bytes *resp)
{
    print_hex("C ", cmd->d, cmd->n);
    if (!read_line_hex(resp) || resp->n < 2)
        fail("no response from the card");
    resp->n -= 2;
    return (resp->d[resp->n] << 8) | resp->d[resp->n + 1];
}

/* One GENERAL AUTHENTICATE: 7C { in_tag in } out, the value of out_tag of the answer's 7C. */
static BUF_MEM *general_authenticate(int last, unsigned in_tag, const BUF_MEM *in, unsigned out_tag)
{
    bytes inner = {.n = 0}, cmd = {.n = 0}, resp;
    const unsigned char *dyn, *v;
    size_t dyn_len, len;
    unsigned sw;

    if (in)
        put_tlv(&inner, in_tag, (const unsigned char *) in->data, in->length);
    put(&cmd, (const unsigned char[]){last ? 0x00 : 0x10, 0x86, 0x00, 0x00}, 4);
    {
        bytes data = {.n = 0};
        put_tlv(&data, 0x7C, inner.d, inner.n);
        put_byte(&cmd, data.n);
        put(&cmd, data.d, data.n);
    }
    put_byte(&cmd, 0x00);
    sw = exchange(&cmd, &resp);
    if (sw != SW_OK)
        fail("GENERAL AUTHENTICATE for DO%02X answered %04X", out_tag, sw);
    dyn = find_tlv(resp.d, resp.n, 0x7C, &dyn_len);
    if (!dyn || !(v = find_tlv(dyn, dyn_len, out_tag, &len)))
        fail("GENERAL AUTHENTICATE answer without 7C { %02X }", out_tag);
    return to_buf(v, len);
}

static int run_pcd(const char *password, int send_parameter_id, char **then, int n_then)
{
    bytes resp, cmd = {.n = 0}, data = {.n = 0};
    unsigned sw;
    size_t oid_len;
    const unsigned char *oid;
    char dotted[128];
    BUF_MEM *enc_nonce, *map, *chip_map, *eph, *chip_eph, *token, *chip_token;

    /* EF.CardAccess from the card: SELECT MF, READ BINARY with SFI 1C. */
    put(&cmd, "\x00\xA4\x00\x0C", 4);
    if ((sw = exchange(&cmd, &resp)) != SW_OK)
        fail("SELECT MF answered %04X", sw);
    cmd.n = 0;
    put(&cmd, "\x00\xB0\x9C\x00\x00", 5);
    sw = exchange(&cmd, &resp);
    if (sw != SW_OK && sw != 0x6282)
        fail("READ BINARY of EF.CardAccess answered %04X", sw);
    init_context(&resp, password);
    oid = protocol_oid(&oid_len);
    OBJ_obj2txt(dotted, sizeof dotted, OBJ_nid2obj(ctx->pace_ctx->protocol), 1);
    printf("INFO %s %d\n", dotted, ctx->pace_ctx->id);

    /* MSE:Set AT (ICAO Doc 9303-11 section 4.4.4.1). */
    put_tlv(&data, 0x80, oid, oid_len);
    put_tlv(&data, 0x83, (const unsigned char[]){(unsigned char) secret_type}, 1);
    if (send_parameter_id)
        put_tlv(&data, 0x84, (const unsigned char[]){(unsigned char) ctx->pace_ctx->id}, 1);
    cmd.n = 0;
    put(&cmd, "\x00\x22\xC1\xA4", 4);
    put_byte(&cmd, data.n);
    put(&cmd, data.d, data.n);
    if ((sw = exchange(&cmd, &resp)) != SW_OK)
        fail("MSE:Set AT answered %04X", sw);

    enc_nonce = general_authenticate(0, 0, NULL, 0x80);
    if (!PACE_STEP2_dec_nonce(ctx, secret, enc_nonce))
        fail("PACE_STEP2_dec_nonce failed");
    map = PACE_STEP3A_generate_mapping_data(ctx);
    if (!map)
        fail("PACE_STEP3A_generate_mapping_data failed");
    chip_map = general_authenticate(0, 0x81, map, 0x82);
    if (!PACE_STEP3A_map_generator(ctx, chip_map))
        fail("PACE_STEP3A_map_generator refused the chip's mapping data");
    eph = PACE_STEP3B_generate_ephemeral_key(ctx);
    if (!eph)
        fail("PACE_STEP3B_generate_ephemeral_key failed");
    chip_eph = general_authenticate(0, 0x83, eph, 0x84);
    if (!PACE_STEP3B_compute_shared_secret(ctx, chip_eph) || !PACE_STEP3C_derive_keys(ctx))
        fail("libeac could not agree on keys with the chip's ephemeral key");
    token = PACE_STEP3D_compute_authentication_token(ctx, chip_eph);
    if (!token)
        fail("PACE_STEP3D_compute_authentication_token failed");
    chip_token = general_authenticate(1, 0x85, token, 0x86);
    if (PACE_STEP3D_verify_authentication_token(ctx, chip_token) != 1)
        fail("libeac rejected the chip's authentication token");
    if (!EAC_CTX_set_encryption_ctx(ctx, EAC_ID_PACE))
        fail("EAC_CTX_set_encryption_ctx failed");

    for (int i = 0; i < n_then; i++) {
        bytes raw, plain, status;
        command c;
        if (!unhex(then[i], &raw) || !parse_command(&raw, &c))
            fail("bad --then APDU %s", then[i]);
        wrap_command(&c, &cmd);
        sw = exchange(&cmd, &resp);
        if (!EAC_increment_ssc(ctx))
            fail("EAC_increment_ssc failed");
        if (!unwrap_objects(NULL, 0, resp.d, resp.n, 0x99, &plain, &status) || status.n != 2)
            fail("the protected response (SW %04X) does not verify", sw);
        if ((unsigned) ((status.d[0] << 8) | status.d[1]) != sw)
            fail("DO99 %02X%02X differs from the plain status word %04X", status.d[0], status.d[1], sw);
        put(&plain, status.d, 2);
        print_hex("R ", plain.d, plain.n);
    }
    printf("DONE\n");
    fflush(stdout);
    BUF_MEM_free(enc_nonce);
    BUF_MEM_free(map);
    BUF_MEM_free(chip_map);
    BUF_MEM_free(eph);
    BUF_MEM_free(chip_eph);
    BUF_MEM_free(token);
    BUF_MEM_free(chip_token);
    return 0;
}

/* ---- libeac as the chip ------------------------------------------------------------------------- */

static int step;        /* the next GENERAL AUTHENTICATE step, 1-4; 0 before MSE:Set AT */
static int sm_open;     /* secure messaging established */
static BUF_MEM *terminal_eph;
static bytes card_access, file;

static void answer(bytes *out, const unsigned char *d, size_t n, unsigned sw)
{
    out->n = 0;
    put(out, d, n);
    put_byte(out, sw >> 8);
    put_byte(out, sw & 0xFF);
}

static void read_binary(const command *c, const bytes *ef, bytes *out)
{
    size_t offset = (c->p1 & 0x80) ? 0 : ((size_t) c->p1 << 8) | c->p2;
    size_t want = c->has_le ? (c->le ? c->le : 256) : 0, n;
    if (offset > ef->n) {
        answer(out, NULL, 0, 0x6B00);
        return;
    }
    n = ef->n - offset < want ? ef->n - offset : want;
    answer(out, ef->d + offset, n, n < want ? 0x6282 : SW_OK);
}

static void pace_step(const command *c, bytes *out)
{
    const unsigned char *dyn, *v;
    size_t dyn_len, len;
    unsigned want_tag = step == 1 ? 0 : step == 2 ? 0x81 : step == 3 ? 0x83 : 0x85;
    BUF_MEM *in = NULL, *mine = NULL;
    unsigned reply_tag = 0x80 + 2 * (step - 1);
    bytes inner = {.n = 0}, reply = {.n = 0};

    if (!step || ((c->cla & 0x10) != 0) != (step < 4)) {
        step = 0;
        answer(out, NULL, 0, 0x6985);
        return;
    }
    dyn = find_tlv(c->data.d, c->data.n, 0x7C, &dyn_len);
    v = dyn && want_tag ? find_tlv(dyn, dyn_len, want_tag, &len) : NULL;
    if (!dyn || (want_tag && !v) || (!want_tag && dyn_len)) {
        step = 0;
        answer(out, NULL, 0, 0x6A80);
        return;
    }
    if (v)
        in = to_buf(v, len);
    switch (step) {
    case 1:
        mine = PACE_STEP1_enc_nonce(ctx, secret);
        break;
    case 2:
        mine = PACE_STEP3A_generate_mapping_data(ctx);
        if (mine && !PACE_STEP3A_map_generator(ctx, in))
            BUF_MEM_free(mine), mine = NULL;
        break;
    case 3:
        mine = PACE_STEP3B_generate_ephemeral_key(ctx);
        if (mine && (!PACE_STEP3B_compute_shared_secret(ctx, in) || !PACE_STEP3C_derive_keys(ctx)))
            BUF_MEM_free(mine), mine = NULL;
        BUF_MEM_free(terminal_eph);
        terminal_eph = in;
        in = NULL;
        break;
    case 4:
        if (PACE_STEP3D_verify_authentication_token(ctx, in) != 1) {
            fprintf(stderr, "TOKEN the terminal's authentication token did not verify\n");
            step = 0;
            BUF_MEM_free(in);
            answer(out, NULL, 0, 0x6300);
            return;
        }
        mine = PACE_STEP3D_compute_authentication_token(ctx, terminal_eph);
        break;
    }
    BUF_MEM_free(in);
    if (!mine) {
        fprintf(stderr, "STEP %d failed in libeac\n", step);
        step = 0;
        answer(out, NULL, 0, 0x6A80);
        return;
    }
    put_tlv(&inner, reply_tag, (const unsigned char *) mine->data, mine->length);
    put_tlv(&reply, 0x7C, inner.d, inner.n);
    BUF_MEM_free(mine);
    if (step == 4) {
        if (!EAC_CTX_set_encryption_ctx(ctx, EAC_ID_PACE))
            fail("EAC_CTX_set_encryption_ctx failed");
        sm_open = 1;
        step = 0;
        fprintf(stderr, "PACE established\n");
    } else {
        step++;
    }
    answer(out, reply.d, reply.n, SW_OK);
}

static void mse_set_at(const command *c, bytes *out)
{
    size_t oid_len, len;
    const unsigned char *oid = protocol_oid(&oid_len), *v;
    step = 0;
    if (c->p1 != 0xC1 || c->p2 != 0xA4) {
        answer(out, NULL, 0, 0x6A86);
        return;
    }
    v = find_tlv(c->data.d, c->data.n, 0x80, &len);
    if (!v || len != oid_len || memcmp(v, oid, len)) {
        answer(out, NULL, 0, 0x6A80);
        return;
    }
    v = find_tlv(c->data.d, c->data.n, 0x83, &len);
    if (!v || len != 1 || v[0] != secret_type) {
        answer(out, NULL, 0, 0x6A88);
        return;
    }
    v = find_tlv(c->data.d, c->data.n, 0x84, &len);
    if (v && (len != 1 || v[0] != ctx->pace_ctx->id)) {
        answer(out, NULL, 0, 0x6A88);
        return;
    }
    step = 1;
    answer(out, NULL, 0, SW_OK);
}

/* The plain command's answer: SELECT always succeeds; READ BINARY serves EF.CardAccess by its SFI
 * and, under secure messaging, the --file bytes. */
static void plain_command(const command *c, bytes *out)
{
    if (c->ins == 0xA4)
        answer(out, NULL, 0, SW_OK);
    else if (c->ins == 0xB0 && c->p1 == (0x80 | 0x1C))
        read_binary(c, &card_access, out);
    else if (c->ins == 0xB0 && sm_open)
        read_binary(c, &file, out);
    else if (c->ins == 0xB0)
        answer(out, NULL, 0, 0x6982);
    else if (c->ins == 0x22 && !sm_open)
        mse_set_at(c, out);
    else if (c->ins == 0x86 && !sm_open)
        pace_step(c, out);
    else
        answer(out, NULL, 0, 0x6D00);
}

/* Chip: verify and decrypt a protected command, answer it, protect the answer. */
static void protected_command(const bytes *raw, bytes *out)
{
    command c, plain;
    bytes le, resp, body = {.n = 0}, mac;
    BUF_MEM *h;
    unsigned sw;

    if (!parse_command(raw, &c) || !EAC_increment_ssc(ctx))
        fail("malformed protected command");
    h = padded(raw->d, 4);
    if ((c.cla & 0x0C) != 0x0C
        || !unwrap_objects((unsigned char *) h->data, h->length, c.data.d, c.data.n, 0x97, &plain.data, &le)
        || le.n > 1) {
        BUF_MEM_free(h);
        fprintf(stderr, "SM the protected command does not verify\n");
        sm_open = 0;
        answer(out, NULL, 0, 0x6988);
        return;
    }
    BUF_MEM_free(h);
    plain.cla = c.cla & ~0x0C;
    plain.ins = c.ins;
    plain.p1 = c.p1;
    plain.p2 = c.p2;
    plain.has_le = le.n == 1;
    plain.le = le.n ? le.d[0] : 0;
    {
        bytes logged = {.n = 0};
        put(&logged, (unsigned char[]){plain.cla, plain.ins, plain.p1, plain.p2}, 4);
        if (plain.data.n) {
            put_byte(&logged, plain.data.n);
            put(&logged, plain.data.d, plain.data.n);
        }
        if (plain.has_le)
            put_byte(&logged, plain.le);
        fprintf(stderr, "PLAIN ");
        for (size_t i = 0; i < logged.n; i++)
            fprintf(stderr, "%02X", logged.d[i]);
        fprintf(stderr, "\n");
    }
    plain_command(&plain, &resp);
    sw = (resp.d[resp.n - 2] << 8) | resp.d[resp.n - 1];
    resp.n -= 2;
    if (!EAC_increment_ssc(ctx))
        fail("EAC_increment_ssc failed");
    put_cryptogram(&body, c.ins, resp.d, resp.n);
    put_tlv(&body, 0x99, (const unsigned char[]){sw >> 8, sw & 0xFF}, 2);
    mac_of(body.d, body.n, &mac);
    put_tlv(&body, 0x8E, mac.d, mac.n);
    answer(out, body.d, body.n, sw);
}

static int run_picc(const char *card_access_hex, const char *password, const char *file_hex)
{
    bytes raw, out;
    command c;
    if (!unhex(card_access_hex, &card_access) || !unhex(file_hex, &file))
        fail("bad --card-access or --file hex");
    init_context(&card_access, password);
    while (read_line_hex(&raw)) {
        if (sm_open && raw.n >= 4 && (raw.d[0] & 0x0C))
            protected_command(&raw, &out);
        else if (!parse_command(&raw, &c))
            answer(&out, NULL, 0, 0x6700);
        else {
            /* A plain command ends secure messaging (ICAO Doc 9303-11 section 9.8.4). */
            if (sm_open)
                fprintf(stderr, "SM plain command during secure messaging\n");
            sm_open = 0;
            plain_command(&c, &out);
        }
        print_hex("", out.d, out.n);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *password = NULL, *card_access_hex = NULL, *file_hex = "";
    char *then[16];
    int n_then = 0, send_parameter_id = 0, rc;

    if (argc < 2 || (strcmp(argv[1], "pcd") && strcmp(argv[1], "picc")))
        fail("usage: pace_harness pcd|picc [options]");
    secret_type = PACE_SEC_UNDEF;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--parameter-id")) {
            send_parameter_id = 1;
            continue;
        }
        if (!v)
            fail("%s needs a value", a);
        i++;
        if (!strcmp(a, "--type"))
            secret_type = parse_type(v);
        else if (!strcmp(a, "--password"))
            password = v;
        else if (!strcmp(a, "--card-access"))
            card_access_hex = v;
        else if (!strcmp(a, "--file"))
            file_hex = v;
        else if (!strcmp(a, "--then") && n_then < 16)
            then[n_then++] = argv[i];
        else
            fail("unknown option %s", a);
    }
    if (!password || secret_type == PACE_SEC_UNDEF)
        fail("--type and --password are required");
    EAC_init();
    if (!strcmp(argv[1], "pcd"))
        rc = run_pcd(password, send_parameter_id, then, n_then);
    else if (!card_access_hex)
        fail("picc needs --card-access");
    else
        rc = run_picc(card_access_hex, password, file_hex);
    PACE_SEC_clear_free(secret);
    EAC_CTX_clear_free(ctx);
    BUF_MEM_free(terminal_eph);
    EAC_cleanup();
    return rc;
}
