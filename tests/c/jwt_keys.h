/* jwt_keys.h — TEST-ONLY keys for the JWT tests, benchmark and fuzz harness (generated once with
 * `openssl genpkey`; never use them for anything else). */
#ifndef JWT_KEYS_H
#define JWT_KEYS_H

static const char RSA_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCmGltOFyyc/zCH\n"
    "xR0VxgvdYU+2xytO94+q6FjmfbcPBD1GUILpG5/meAUtqZZEyfokvC0uuhgRNXyN\n"
    "P90+g8RdL9IuakuSK4TWG7aqaW4260IRdl7s2oKLtL/etvqtTChZ1t4T5L8ZXJNh\n"
    "qgfrytrtDRejSpTjXZljvPZRn6Y5d1di2onIqo8H2s7DpYEq6G+ItYGhBypphCol\n"
    "VwPXg6ClJITDzt3C5l2+yZIkH8xM7vAWphZT9jjcFLrEEM/6PGzrBVH8kafe6Ax3\n"
    "4c3n0V/U7JSgQvLFMf7TpZF79cyrkIAUcCS1cyImd3/6Hm4ybWUsRUCp0hWewJP0\n"
    "TngZWcPZAgMBAAECggEAFz1xz/PDHLZBwoVMQ/shNtjCL/ce8p4FnmqC4cDuJ242\n"
    "6osiPd5NGZBqXRCwwzAlTRV9FuAXtPSwWAz69h+2jjk+JZtetnVbUR+wh5hXwNxa\n"
    "spnGv0n1YPmprM4aNbwFm0hKaysip7hBsLT7Bb0ss2UVDRZGzacPapqKNjJprflw\n"
    "YuNw3ihyRftGHcfkcFFR3KOFU/EJm7pKnwaDhNihhjmeiqFvfiE8PWsnUwkA1s9A\n"
    "Npvdy02v+NuNDqN/Z9Hc5SbCTMT9ioVHBBiu4jMbYd89pabIpptl9Rv/r7hXmYD2\n"
    "k/F7KcWBXYCAPYSjQkFZqRD2fIqIFuXESC6jWx2xDwKBgQDWs3LYQNE+7Q57HYYR\n"
    "JcJ87htlC2GMZ4RJs4PgKd1ppQ3EkK7FU966sbtosMfcS6ehjdKj+NcTrLJruxgs\n"
    "9J6s6+HLUOfxWeXbwufGjU/tBI68/X2066P3EvOWDfnodiYdahTmhiAP3pAk+6q+\n"
    "yr13oynPRJbxwI0bZOnqmVQzNwKBgQDGDcnyLGumgD09sHr6B7IQ+wW2BsbsOntS\n"
    "v6h+DgxUtbWoAFBnvBtZ4soaexwVXYh/BOTpmw5NeG64j+2tcND5hck9D/BIWi+5\n"
    "e+CjJJEtqPhNO2552Zv5TfqP9vO3YChCANUwRjofTgH4F3TZm2dJMd84kSHwnH+g\n"
    "w6/HSNppbwKBgQCz6AKf+xBbbkDoIUEqNT3XeZ4y+WpwQH21VFt5BxulXs0+nQ4W\n"
    "A8VrI2squpd+nVaGJVUQWX+/2MJZS5lickhUFgRKXi09LFtT3upgkiEbNup0quUf\n"
    "KSVn79V1M5jplbcyhqWk1VcgdRrMIqZc4X4KNgrex1bElNioz9LC5mCL2QKBgQC1\n"
    "Vs6/BFkUvHpWT45p/D3YOl8CSbY9eVaNb5rwwCAeN7o6Nv9n294XMQXntS0Div59\n"
    "fpeyJRy1Zj3Kk04F7jQJI6wcUsmpFZp49Km79rFO41VmMbJ3sv2TCQkQZAbGsi5q\n"
    "MKUCbGqvWxeGdsOwsw+g/x7phklTK5fYNRRvHY+N1QKBgG3rn011XOaKr2ssTR8i\n"
    "3So5VULuCU7nNBCR7SKNJmiAcasIeEHKmSEd9s9LsOws1S0QlKAq/iPXBvtyG1qo\n"
    "d3VpsnAXkbkDtuqZwz9OKvekuCeU61VF///pLxW89TMfQAYXyXzneYg+Xeddnq0q\n"
    "Z93uPowVoadfha/Cj0VdfG0v\n"
    "-----END PRIVATE KEY-----\n";

static const char RSA_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAphpbThcsnP8wh8UdFcYL\n"
    "3WFPtscrTvePquhY5n23DwQ9RlCC6Ruf5ngFLamWRMn6JLwtLroYETV8jT/dPoPE\n"
    "XS/SLmpLkiuE1hu2qmluNutCEXZe7NqCi7S/3rb6rUwoWdbeE+S/GVyTYaoH68ra\n"
    "7Q0Xo0qU412ZY7z2UZ+mOXdXYtqJyKqPB9rOw6WBKuhviLWBoQcqaYQqJVcD14Og\n"
    "pSSEw87dwuZdvsmSJB/MTO7wFqYWU/Y43BS6xBDP+jxs6wVR/JGn3ugMd+HN59Ff\n"
    "1OyUoELyxTH+06WRe/XMq5CAFHAktXMiJnd/+h5uMm1lLEVAqdIVnsCT9E54GVnD\n"
    "2QIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char RSA_PUB_PKCS1[] =
    "-----BEGIN RSA PUBLIC KEY-----\n"
    "MIIBCgKCAQEAphpbThcsnP8wh8UdFcYL3WFPtscrTvePquhY5n23DwQ9RlCC6Ruf\n"
    "5ngFLamWRMn6JLwtLroYETV8jT/dPoPEXS/SLmpLkiuE1hu2qmluNutCEXZe7NqC\n"
    "i7S/3rb6rUwoWdbeE+S/GVyTYaoH68ra7Q0Xo0qU412ZY7z2UZ+mOXdXYtqJyKqP\n"
    "B9rOw6WBKuhviLWBoQcqaYQqJVcD14OgpSSEw87dwuZdvsmSJB/MTO7wFqYWU/Y4\n"
    "3BS6xBDP+jxs6wVR/JGn3ugMd+HN59Ff1OyUoELyxTH+06WRe/XMq5CAFHAktXMi\n"
    "Jnd/+h5uMm1lLEVAqdIVnsCT9E54GVnD2QIDAQAB\n"
    "-----END RSA PUBLIC KEY-----\n";

static const char EC_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgE/zJeCSivMNw4nzM\n"
    "etZHMMc6w24bppBVaXbJt0x+OeWhRANCAATR+izmVY7Sc600mQuNAXFXvju5HAGw\n"
    "cJLYDGbfIiI/J+c6ylqmIbDOt+E67GgMSh4titRzdfx+rC+X/SkVgeAQ\n"
    "-----END PRIVATE KEY-----\n";

static const char EC_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0fos5lWO0nOtNJkLjQFxV747uRwB\n"
    "sHCS2Axm3yIiPyfnOspapiGwzrfhOuxoDEoeLYrUc3X8fqwvl/0pFYHgEA==\n"
    "-----END PUBLIC KEY-----\n";

static const char EC_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdDCCARugAwIBAgIUcxZ6dVyt4StPFur9HPaev0qHIT0wCgYIKoZIzj0EAwIw\n"
    "DzENMAsGA1UEAwwEdGVzdDAgFw0yNjEyMDIwNTM4NDBaGA8yMTI2MTEwODA1Mzg0\n"
    "MFowDzENMAsGA1UEAwwEdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNH6\n"
    "LOZVjtJzrTSZC40BcVe+O7kcAbBwktgMZt8iIj8n5zrKWqYhsM634TrsaAxKHi2K\n"
    "1HN1/H6sL5f9KRWB4BCjUzBRMB0GA1UdDgQWBBQ2d2BAbK5XOMbMT4/OyeuRuiw2\n"
    "zzAfBgNVHSMEGDAWgBQ2d2BAbK5XOMbMT4/OyeuRuiw2zzAPBgNVHRMBAf8EBTAD\n"
    "AQH/MAoGCCqGSM49BAMCA0cAMEQCIE97bOCKXm3pVhzNnlxtW7dNVyFQeK8KX18Q\n"
    "+c0/M7boAiAmj0/dC+rwQC1oyAfk3LjWpgqq9arX5ppZ5rw05U0hXA==\n"
    "-----END CERTIFICATE-----\n";

static const char RSA1024_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC/bNePV5Pvd3JHk9qyYrJiIPIT\n"
    "b7H7PzLx5CUjYV+MCasCu/Pz8pkVXQDi95NXxJraxxTEvjXnk9JI3Ew+FsDNWeiW\n"
    "2cDDyo73E/daVMudi/K7daw91nS6/YjI/LrdTwWVTYyvdy+mHgTTr0XS+AoqSp0V\n"
    "Hfx1bDJ9YHhjBJazhwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char EC384_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE7CpFbnkl4IubYFreyjMRwsA0HyDmhi5j\n"
    "VZNYRXoR9WJ0v/aEIWUuNOnbzXXvcmjmv+uuYNiC4u4Jl6B5WSnckpIY9AkLnUk2\n"
    "c+Gi5bNVifFCw7RKQW60Xt8j0EaPxxyL\n"
    "-----END PUBLIC KEY-----\n";

static const char ED25519_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAmt/oUHEwKEHyL2MCYSh1+qcajdqXxzU3ynexorf1EiU=\n"
    "-----END PUBLIC KEY-----\n";

#endif
