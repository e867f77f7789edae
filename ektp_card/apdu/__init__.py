"""Bytes on the wire: command/response APDUs, status words, BER-TLV and the processor stack."""

from ektp_card.apdu.command import CommandApdu, ResponseApdu
from ektp_card.apdu.protocol import ApduProtocol
from ektp_card.apdu.sw import SW, check, describe
from ektp_card.apdu.tlv import Tlv
from ektp_card.apdu.transport import Transport

__all__ = ["SW", "ApduProtocol", "CommandApdu", "ResponseApdu", "Tlv", "Transport", "check", "describe"]
