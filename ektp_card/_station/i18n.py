"""Every string the station shows, in Bahasa Indonesia and English: one catalogue.

Templates call ``t("key", name=value)``; a key missing from the catalogue is an error at test time
(tests/test_station_routes.py renders every page in both languages and checks every key exists), so a
page never shows a raw key to a clerk.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"

CATALOGUE: Mapping[str, Mapping[str, str]] = {
    # --- frame -------------------------------------------------------------------------------------
    "app.title": {"id": "Stasiun e-KTP", "en": "e-KTP station"},
    "nav.clerk": {"id": "Periksa kartu", "en": "Check a card"},
    "nav.desk": {"id": "Meja distribusi", "en": "Distribution desk"},
    "nav.review": {"id": "Uji keamanan", "en": "Security review"},
    "lang.switch": {"id": "English", "en": "Bahasa Indonesia"},
    "footer.operator": {"id": "Operator: {operator}", "en": "Operator: {operator}"},
    "footer.synthetic": {"id": "Mode demo: semua data sintetis", "en": "Demo mode: all data is synthetic"},
    # --- reader ------------------------------------------------------------------------------------
    "reader.title": {"id": "Pembaca kartu", "en": "Card reader"},
    "reader.empty": {"id": "Tidak ada kartu. Letakkan kartu di pembaca.",
                     "en": "No card. Place the card on the reader."},
    "reader.present": {"id": "Kartu ada di pembaca: {card}", "en": "Card on the reader: {card}"},
    "reader.busy": {"id": "Pembaca sedang dipakai. Tunggu sebentar lalu coba lagi.",
                    "en": "The reader is busy. Wait a moment and try again."},
    "reader.unavailable": {"id": "Pembaca tidak tersedia: {why}", "en": "The reader is not available: {why}"},
    "reader.insert": {"id": "Masukkan kartu virtual", "en": "Insert a virtual card"},
    "reader.insert.button": {"id": "Masukkan", "en": "Insert"},
    "reader.remove.button": {"id": "Keluarkan kartu", "en": "Remove the card"},
    # --- clerk -------------------------------------------------------------------------------------
    "clerk.title": {"id": "Periksa keaslian kartu", "en": "Check that a card is genuine"},
    "clerk.can": {"id": "CAN (6 angka yang tercetak di kartu)",
                  "en": "CAN (the 6 digits printed on the card)"},
    "clerk.fingerprint": {"id": "Sidik jari pemegang (file ISO/IEC 19794-2, tidak wajib)",
                          "en": "Holder's fingerprint (ISO/IEC 19794-2 file, optional)"},
    "clerk.fingerprint.unavailable": {
        "id": "Pencocokan sidik jari memerlukan terminal dengan sertifikat (opsi --terminal-chain).",
        "en": "Fingerprint matching needs a terminal certificate (option --terminal-chain)."},
    "clerk.verify": {"id": "Periksa kartu", "en": "Check the card"},
    "clerk.passport": {"id": "Paspor (ICAO)", "en": "Passport (ICAO)"},
    "clerk.mrz": {"id": "MRZ: ketik atau tempel dua/tiga baris, atau NOMOR,LAHIR,BERLAKU (YYMMDD)",
                  "en": "MRZ: type or paste the two or three lines, or NUMBER,BIRTH,EXPIRY (YYMMDD)"},
    "clerk.verify.passport": {"id": "Periksa paspor", "en": "Check the passport"},
    "clerk.again": {"id": "Periksa kartu lain", "en": "Check another card"},
    "clerk.can.invalid": {"id": "CAN harus tepat 6 angka.", "en": "The CAN is exactly 6 digits."},
    "clerk.mrz.invalid": {"id": "MRZ tidak dapat dibaca: {why}", "en": "The MRZ cannot be read: {why}"},
    "clerk.fingerprint.invalid": {"id": "File sidik jari tidak dapat dibaca: {why}",
                                  "en": "The fingerprint file cannot be read: {why}"},
    "clerk.fingerprint.too_large": {"id": "File sidik jari terlalu besar.",
                                    "en": "The fingerprint file is too large."},
    # --- outcomes ----------------------------------------------------------------------------------
    "verdict.genuine": {"id": "ASLI", "en": "GENUINE"},
    "verdict.genuine.say": {
        "id": "Data kartu ditandatangani penerbit dan chip ini adalah chip aslinya. Bandingkan foto dengan "
              "orang di depan Anda.",
        "en": "The card's data is signed by the issuer and this is its original chip. Compare the photo "
              "with the person in front of you."},
    "verdict.forged": {"id": "PALSU", "en": "FORGED"},
    "verdict.forged.say": {
        "id": "Data di chip bukan yang ditandatangani penerbit. Jangan terima kartu ini.",
        "en": "The data on the chip is not what the issuer signed. Do not accept this card."},
    "verdict.cloned": {"id": "KLONING", "en": "CLONED"},
    "verdict.cloned.say": {
        "id": "Data penerbit ada pada chip lain: kartu ini salinan. Jangan terima kartu ini.",
        "en": "The issuer's data is on another chip: this card is a copy. Do not accept this card."},
    "verdict.revoked": {"id": "DICABUT", "en": "REVOKED"},
    "verdict.revoked.say": {
        "id": "Kartu ini asli tetapi sudah dilaporkan hilang, rusak atau dicabut. Jangan terima kartu ini.",
        "en": "This card is genuine but was reported lost, damaged or revoked. Do not accept this card."},
    "verdict.holder_mismatch": {"id": "BUKAN PEMILIK", "en": "HOLDER MISMATCH"},
    "verdict.holder_mismatch.say": {
        "id": "Kartu asli, tetapi sidik jari tidak cocok dengan pemilik kartu.",
        "en": "The card is genuine, but the fingerprint does not match the card's holder."},
    "verdict.unreadable": {"id": "TIDAK DAPAT DIBACA", "en": "COULD NOT READ"},
    "error.wrong_can": {"id": "Kartu menolak CAN ini. Periksa 6 angka yang tercetak di kartu.",
                        "en": "The card refused this CAN. Check the 6 digits printed on the card."},
    "error.wrong_can.tries": {"id": "Kartu menolak CAN ini ({retries} kali percobaan tersisa).",
                              "en": "The card refused this CAN ({retries} tries left)."},
    "error.wrong_mrz": {"id": "Kartu menolak MRZ ini. Periksa nomor dokumen dan tanggal.",
                        "en": "The card refused this MRZ. Check the document number and dates."},
    "error.no_card": {"id": "Tidak ada kartu di pembaca.", "en": "There is no card on the reader."},
    "error.removed": {"id": "Kartu diangkat sebelum pemeriksaan selesai. Letakkan kembali dan coba lagi.",
                      "en": "The card was removed before the check finished. Put it back and try again."},
    "error.not_ektp": {"id": "Kartu ini bukan e-KTP (tidak ada aplikasi e-KTP).",
                       "en": "This card is not an e-KTP (it has no e-KTP application)."},
    "error.card": {"id": "Kartu tidak dapat dibaca: {why}", "en": "The card could not be read: {why}"},
    "error.session": {"id": "Sesi berakhir. Buka stasiun dengan tautan yang dicetak saat dimulai.",
                      "en": "The session has ended. Open the station with the link printed when it started."},
    "error.csrf": {"id": "Formulir kedaluwarsa. Muat ulang halaman dan coba lagi.",
                   "en": "The form has expired. Reload the page and try again."},
    "error.too_large": {"id": "Unggahan terlalu besar.", "en": "The upload is too large."},
    "error.not_found": {"id": "Halaman tidak ditemukan.", "en": "Page not found."},
    "error.server": {"id": "Terjadi kesalahan di stasiun. Tidak ada yang diubah. Catatan ada di log (-vv).",
                     "en": "Something went wrong in the station. Nothing was changed. Details are in the "
                           "log (-vv)."},
    "error.result_gone": {"id": "Hasil ini sudah tidak disimpan. Periksa kartu lagi.",
                          "en": "This result is no longer kept. Check the card again."},
    # --- result page -------------------------------------------------------------------------------
    "result.photo": {"id": "Foto dari chip", "en": "Photo from the chip"},
    "result.photo.none": {"id": "Chip tidak memberikan foto.", "en": "The chip gave no photo."},
    "result.printed": {"id": "Data tercetak (dari chip)", "en": "Printed data (from the chip)"},
    "result.compare": {"id": "Bandingkan foto, orang, dan tulisan di kartu.",
                       "en": "Compare the photo, the person and the card's surface."},
    "result.checks": {"id": "Pemeriksaan", "en": "Checks"},
    "result.details": {"id": "Rincian", "en": "Details"},
    "result.fingerprint": {"id": "Sidik jari", "en": "Fingerprint"},
    "result.fingerprint.match": {"id": "Cocok dengan pemilik kartu (skor {score})",
                                 "en": "Matches the card's holder (score {score})"},
    "result.fingerprint.nomatch": {"id": "Tidak cocok (skor {score}, ambang {threshold})",
                                   "en": "No match (score {score}, threshold {threshold})"},
    "status.pass": {"id": "lulus", "en": "passed"},
    "status.fail": {"id": "gagal", "en": "failed"},
    "status.not_supported": {"id": "tidak ada", "en": "not offered"},
    "status.skip": {"id": "dilewati", "en": "skipped"},
    "check.pace": {"id": "Akses dengan CAN (PACE)", "en": "Access with the CAN (PACE)"},
    "check.bac": {"id": "Akses dengan MRZ (BAC)", "en": "Access with the MRZ (BAC)"},
    "check.card-access": {"id": "Informasi akses kartu", "en": "Card access information"},
    "check.card-info": {"id": "Informasi ukuran perintah", "en": "Command size information"},
    "check.read": {"id": "Membaca data", "en": "Reading the data"},
    "check.passive-authentication": {"id": "Tanda tangan penerbit", "en": "Issuer's signature"},
    "check.revocation": {"id": "Daftar kartu dicabut", "en": "Revoked card list"},
    "check.printed-data": {"id": "Data tercetak", "en": "Printed data"},
    "check.chip-authentication": {"id": "Chip asli (Chip Authentication)",
                                  "en": "Original chip (Chip Authentication)"},
    "check.active-authentication": {"id": "Chip asli (Active Authentication)",
                                    "en": "Original chip (Active Authentication)"},
    "check.terminal-authentication": {"id": "Hak terminal membaca sidik jari",
                                      "en": "Terminal's right to read fingerprints"},
    "check.dg3": {"id": "Sidik jari di chip", "en": "Fingerprints on the chip"},
    "check.fingerprint": {"id": "Pencocokan sidik jari", "en": "Fingerprint match"},
    # --- printed fields ----------------------------------------------------------------------------
    "field.nik": {"id": "NIK", "en": "NIK"},
    "field.name": {"id": "Nama", "en": "Name"},
    "field.place_of_birth": {"id": "Tempat lahir", "en": "Place of birth"},
    "field.date_of_birth": {"id": "Tanggal lahir", "en": "Date of birth"},
    "field.sex": {"id": "Jenis kelamin", "en": "Sex"},
    "field.blood_type": {"id": "Golongan darah", "en": "Blood type"},
    "field.address": {"id": "Alamat", "en": "Address"},
    "field.rt_rw": {"id": "RT/RW", "en": "RT/RW"},
    "field.kelurahan_desa": {"id": "Kel/Desa", "en": "Village"},
    "field.kecamatan": {"id": "Kecamatan", "en": "District"},
    "field.kabupaten_kota": {"id": "Kabupaten/Kota", "en": "Regency/City"},
    "field.province": {"id": "Provinsi", "en": "Province"},
    "field.religion": {"id": "Agama", "en": "Religion"},
    "field.marital_status": {"id": "Status perkawinan", "en": "Marital status"},
    "field.occupation": {"id": "Pekerjaan", "en": "Occupation"},
    "field.citizenship": {"id": "Kewarganegaraan", "en": "Citizenship"},
    "field.valid_until": {"id": "Berlaku hingga", "en": "Valid until"},
    "field.valid_for_life": {"id": "SEUMUR HIDUP", "en": "FOR LIFE"},
    "field.place_of_issue": {"id": "Tempat terbit", "en": "Place of issue"},
    "field.date_of_issue": {"id": "Tanggal terbit", "en": "Date of issue"},
    "field.synthetic": {"id": "Data sintetis (bukan orang sungguhan)",
                        "en": "Synthetic data (not a real person)"},
    "field.document_number": {"id": "Nomor dokumen", "en": "Document number"},
    "field.document_type": {"id": "Jenis dokumen", "en": "Document type"},
    "field.issuing_state": {"id": "Negara penerbit", "en": "Issuing state"},
    "field.nationality": {"id": "Kewarganegaraan", "en": "Nationality"},
    "field.date_of_expiry": {"id": "Berlaku hingga", "en": "Date of expiry"},
    "field.primary_identifier": {"id": "Nama keluarga", "en": "Surname"},
    "field.secondary_identifier": {"id": "Nama", "en": "Given names"},
}


def translate(language: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``language`` with ``values`` filled in; :class:`KeyError` for a key the
    catalogue lacks (a bug the tests catch), English for a language it lacks."""
    entry = CATALOGUE[key]
    text = entry.get(language) or entry["en"]
    return text.format(**values) if values else text


def language_of(value: str | None) -> str:
    """A supported language code, the default for anything else."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


__all__ = ["CATALOGUE", "DEFAULT_LANGUAGE", "LANGUAGES", "language_of", "translate"]
