"""The 1-2 character grams present in most texts, most frequent first (analysis.py stores them by absence in long
texts). Data, not code: the 600 grams of the most fields (subject, from, to, cc, headers, body) of 500 messages
each of the SpamAssassin and the openbmc corpora (bench/bench_analysis.py --common-grams prints such a list).
A gram's place decides its group: changing the list changes the terms, hence the index schema (store/schema.py).
"""

COMMON_GRAMS: tuple[str, ...] = tuple((
    "o e a n r i t m s c l g p u d h in co om or f y er b re k v w ne li on st an ma en ch x as at te pe il el is de "
    "et rg ro ng ed ar pa le ai to nt nd j la 2 es ge al me ec 1 ri 0 ta fo ee ce he ve z si am th ti se ad ha sp ss "
    "tr rn op it no ra sa ur ic ct 3 lo nu di ab ot us ns fr ou id ll io 7 ts ke rs 6 be ea 4 dr ho da mi sh nc so 5 "
    "su fi im wi pl ca 8 na un 9 hi mo ex iv fe os ev 00 ul od tu po do rt of 20 ie ut pr vi bs q oc ei au em ag rm "
    "by tc tt nf oo 02 ow ac ol sc tp rr ly 10 ig ck ir ef ia we bo ni dt ry ty ep ub ue gm cr bi ew je if pi ci cl "
    "mc gi ht qu og ap rc ip bm mp wa ib _ ux ms 12 bl ob bu ix ru 11 up ph 01 lt fa ba ff rd ay av zl sm gl dd xt oz "
    "uc nb ps va bj lu ki ds nk 16 ls yp 21 25 24 go 40 ey pp 19 13 ys rk tm 06 sl tf 17 gn eg mt cc 15 ld ga 04 tl "
    "70 ua 03 08 50 wo ug pt 27 ui 07 30 mm nl vo sf yo 14 oe eq ja ov gu nn eb jm gr nv hu wh ws 09 lp gh 18 cu 26 "
    "ju 23 jo rv um lm 22 05 du br hn 80 lk lh ft dm 64 sk 44 rl hm gs ak ze mu 60 iz wn 32 tw xe ok wr ya pm pu 29 "
    "rp 51 ks cm sy ko eo hr 31 34 38 xi ny ax 48 mb 41 56 af 36 hy pd fu oi pc ml np yy 28 ud 72 vg ye 55 35 bh kr "
    "_s 45 84 rz 52 cs 94 xp 43 ae v1 ik sw ii aw my dy 33 xa 90 ww tn fl 42 59 92 39 yt oa 77 a2 58 aa ka eu 61 2c "
    "dn cd lf dc xc uv 68 47 dl 54 sn dh ah 37 46 sz m_ 53 gp 57 a3 fd 75 _a 93 za 74 zt kn s_ gg 62 86 91 sv md 65 "
    "71 zy 49 99 cy 85 98 oh _g db bc 73 rf 96 yn 87 81 nh gc 82 zk 69 a0 ao ek e1 _p 3c dw f1 63 66 sd 79 i2 76 88 "
    "8b v6 pf zz iu ku nm eh az lc d_ c2 7b 95 uo _h uy py fc 6f c0 wl cv vc aj sb 83 lb cb fy kh nj bb dk 78 yi a1 "
    "n7 lv cp 67 b9 _e yl df wm fs zo t2 c1 89 lg sr uf yr _2 yu oy x2 hs sg td kl o_ 97 rb ym pv dv ky lr cf e_ hp "
    "bd rw 2a b0 f0 c4 cn 0a iy 6_ 3e kc gt c3 rh l_ zi fb mr 0c f_ dg pg fw 1c bn vd yw hw ox ji "
).split())
