"""What the card says about itself: ATR, ATS historical bytes and the content of EF.ATR/INFO."""

from __future__ import annotations

from functools import reduce

from ektp_card.apdu.tlv import Tlv
from ektp_card.virtual.config import CardConfig

#: FID and SFI of EF.ATR/INFO under the MF (ISO/IEC 7816-4 section 8.2.1.1; ICAO Doc 9303-10).
EF_ATR_INFO_FID = 0x2F01
EF_ATR_INFO_SFI = 0x01

#: Card service data byte (ISO/IEC 7816-4:2013 section 12.1.1.5): selection by full DF name (b8) and
#: partial DF name (b7), BER-TLV data objects in EF.ATR (b5), read with READ BINARY (b4-b2 = 100),
#: card with an MF (b1 = 0).
CARD_SERVICE_DATA = 0xD8

#: Card capabilities, first software function table (ISO/IEC 7816-4:2013 section 12.1.1.9): DF
#: selection by full DF name, partial DF name, path and file identifier; short EF identifiers.
_SOFTWARE_FUNCTIONS_1 = 0xF4
#: Data coding byte: proprietary write behaviour (the card has UPDATE BINARY but no WRITE BINARY),
#: data unit of one byte.
_DATA_CODING = 0x21
#: Third table: b8 command chaining, b7 extended Lc/Le, b6 extended length information in EF.ATR/INFO;
#: b5-b1 = 0: basic logical channel only.
_CHAINING, _EXTENDED, _EXTENDED_INFO = 0x80, 0x40, 0x20

_TAG_CARD_SERVICE = 0x43
_TAG_CARD_CAPABILITIES = 0x47
_TAG_EXTENDED_LENGTH_INFO = 0x7F66

# Overheads between APDU sizes (which DO 7F66 counts) and data sizes (which the card limits): an
# extended case-4 command has a 4-byte header, 3-byte Lc and 2-byte Le; a response has SW1-SW2.
COMMAND_APDU_OVERHEAD = 9
RESPONSE_APDU_OVERHEAD = 2


def card_capabilities(config: CardConfig) -> bytes:
    """The three card capability bytes (compact-TLV 7x in the historical bytes, DO 47 in EF.ATR)."""
    third = _CHAINING | ((_EXTENDED | _EXTENDED_INFO) if config.extended_length else 0)
    return bytes((_SOFTWARE_FUNCTIONS_1, _DATA_CODING, third))


def historical_bytes(config: CardConfig, lcs: int) -> bytes:
    """Historical bytes: category indicator 80, then compact-TLV card service data (31), card
    capabilities (73) and a status indicator holding the card's life-cycle status (81), as the
    historical bytes clause of ISO/IEC 7816-4 lays them out."""
    if config.historical_bytes is not None:
        return config.historical_bytes
    return bytes((0x80, 0x31, CARD_SERVICE_DATA, 0x73, *card_capabilities(config), 0x81, lcs))


def contactless_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader builds for an ISO/IEC 14443-4 card (PC/SC part 3 section 3.1.3.2.3):
    3B 8n 80 01, the n historical bytes, and TCK, the XOR of every byte from T0 on."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    tck = reduce(lambda a, b: a ^ b, body, 0)
    return b"\x3b" + body + bytes((tck,))


def _der_integer(n: int) -> Tlv:
    """An ASN.1 INTEGER (tag 02) in its shortest two's complement form, n >= 0."""
    return Tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def extended_length_info(config: CardConfig) -> Tlv:
    """DO 7F66 (ISO/IEC 7816-4:2013 section 12.7.1): the largest command and response APDUs, in bytes.

    They count whole APDUs as the standard says, so a reader derives the data limits by taking off
    9 bytes (command) and 2 bytes (response).
    """
    return Tlv.of(
        _TAG_EXTENDED_LENGTH_INFO,
        _der_integer(config.max_command_data + COMMAND_APDU_OVERHEAD),
        _der_integer(config.max_response_data + RESPONSE_APDU_OVERHEAD),
    )


def ef_atr_info(config: CardConfig) -> bytes:
    """Content of EF.ATR/INFO: card service data (43), card capabilities (47) and, with extended
    length on, the extended length information (7F66)."""
    objects = [
        Tlv(_TAG_CARD_SERVICE, bytes((CARD_SERVICE_DATA,))),
        Tlv(_TAG_CARD_CAPABILITIES, card_capabilities(config)),
    ]
    if config.extended_length:
        objects.append(extended_length_info(config))
    return b"".join(t.encode() for t in objects)
