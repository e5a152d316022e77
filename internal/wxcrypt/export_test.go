package wxcrypt

import (
	"crypto/aes"
	"crypto/cipher"
)

// cbcEncrypt encrypts buf in place with c's key and IV, without any framing.
func cbcEncrypt(c *Crypter, buf []byte) {
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(buf, buf)
}
