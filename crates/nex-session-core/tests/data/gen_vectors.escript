#!/usr/bin/env escript
%% Makes extra Phoenix.Token vectors with OTP's own crypto and term_to_binary,
%% the same construction as Plug.Crypto.sign/4. Output: the TSV columns of
%% plug_crypto_vectors.tsv; the max age column may say "infinity" (Elixir's atom).
%% Run: escript gen_vectors.escript > otp_vectors.tsv
main(_) ->
    Cases = [
        {<<"0123456789abcdef0123456789abcdef">>, <<"nex.session">>, <<"a">>, 0, 0},
        {<<"0123456789abcdef0123456789abcdef">>, <<"nex.session">>, <<>>, 255, 255},
        {<<"0123456789abcdef0123456789abcdef">>, <<"nex.csrf">>, <<"x">>, 256, 256},
        {<<"0123456789abcdef0123456789abcdef">>, <<"s">>, <<"neg">>, -1, -1},
        {<<"0123456789abcdef0123456789abcdef">>, <<"s">>, <<"i32">>, 2147483, 2147483647},
        {<<"0123456789abcdef0123456789abcdef">>, <<"s">>, <<"big">>, 2147484, 2147483648},
        {<<"0123456789abcdef0123456789abcdef">>, <<"s">>, <<"negbig">>, -2147484, -2147483649},
        {<<"0123456789abcdef0123456789abcdef">>, <<"s">>, <<"far">>, 4102444800, 315360000},
        {<<"0123456789abcdef0123456789abcdef">>, <<"nex.session">>, <<"forever">>, 1764000000, infinity},
        {crypto:strong_rand_bytes(64), <<"user socket">>, binary:copy(<<"long data ">>, 40), 1764000000, 604800}
    ],
    lists:foreach(fun({Secret, Salt, Data, SignedAt, MaxAge}) ->
        Key = crypto:pbkdf2_hmac(sha256, Secret, Salt, 1000, 32),
        Payload = term_to_binary({Data, SignedAt * 1000, MaxAge}),
        Signed = <<"SFMyNTY.", (b64(Payload))/binary>>,
        Mac = crypto:mac(hmac, sha256, Key, Signed),
        Token = <<Signed/binary, ".", (b64(Mac))/binary>>,
        io:format("~s\t~s\t~s\t~p\t~p\t~s~n",
                  [base64:encode(Secret), base64:encode(Salt), base64:encode(Data), SignedAt, MaxAge, Token])
    end, Cases).

b64(Bin) ->
    Std = base64:encode(Bin),
    << <<(url(C))>> || <<C>> <= Std, C =/= $= >>.

url($+) -> $-;
url($/) -> $_;
url(C) -> C.
