"""The 1-2 character grams stored as pattern terms (analysis.py, GRAM_GROUP): every ASCII word-character gram
([a-z0-9_] and pairs of them) and the commonest others, most frequent first (the number of fields -- subject, from,
to, cc, headers, body -- of 500 messages each of the SpamAssassin and the openbmc corpora that have the gram; the
ASCII grams never seen there last): neighbours in the list, a group, are grams of similar frequency. Data, not
code (bench/bench_analysis.py --common-grams 1400 prints such a list). A gram's place decides its group and bit:
changing the list changes the terms, hence the index schema (store/schema.py).
"""

COMMON_GRAMS: tuple[str, ...] = tuple((
    "o e a n r i t m s c l g p u d h in co om or f y er b re k v w ne li on st an ma en ch x as at te pe el il is "
    "de et rg ro ng ed ar pa le ai to nt nd j la 2 es ge al me ec 1 ri 0 ta fo ee ce he ve z si am th ti se ad ha "
    "sp ss tr rn op it no ra sa ur ic ct 3 lo nu di ab ot us ns fr ou id ll io 7 ts ke rs 6 be ea 4 dr ho da mi sh "
    "nc so 5 su fi im wi pl ca 8 na un 9 hi mo ex iv fe os ev 00 ul od tu po do rt of 20 ie ut pr vi bs q oc ei au "
    "em ag rm by tc tt nf oo 02 ow ac ol sc tp rr ly 10 ig ck ir ef ia we bo ni ry dt ty ep ub ue gm cr bi ew je if "
    "pi ci cl mc gi ht qu og ap rc ip bm mp wa ib _ ux ms 12 bl ob bu ix ru 11 up ph 01 lt fa ba ff rd ay av zl sm "
    "gl dd xt oz uc nb ps va bj lu ki ds nk 16 ls yp 21 25 24 go 40 ey pp 19 13 ys rk tm 06 sl tf 17 gn eg mt cc 15 "
    "ld ga 04 tl 70 ua 03 50 08 wo ug pt 27 ui 07 30 mm nl vo sf yo 14 oe eq ja ov gu nn eb jm gr nv hu wh ws 09 lp "
    "gh 18 cu 26 ju 23 jo rv um lm 22 05 du br hn 80 lk lh ft dm 64 sk 44 rl hm gs ak ze mu 60 iz wn 32 tw xe ok wr "
    "ya pm pu 29 rp 51 ks cm sy ko eo hr 31 34 38 xi ny ax 48 mb 41 56 af 36 hy pd fu oi pc ml np yy 28 ud 72 vg ye "
    "55 35 bh kr _s 45 84 rz 52 cs 94 xp 43 ae v1 ik sw ii aw my dy 33 xa 90 ww tn fl 42 59 92 39 yt oa 77 a2 58 aa "
    "ka eu 61 2c dn cd lf dc xc uv 68 47 dl 54 sn dh ah 37 46 sz m_ 53 gp 57 a3 fd 75 _a 93 za 74 zt kn s_ gg 62 86 "
    "91 sv md 65 71 zy 49 99 cy 85 98 oh _g db bc 73 rf 96 yn 87 81 nh gc 82 zk 69 a0 ao ek e1 _p 3c dw f1 63 66 sd "
    "79 i2 76 88 8b v6 pf zz iu ku nm eh az lc d_ c2 7b 95 uo _h uy py fc 6f c0 wl cv vc aj sb 83 lb cb fy kh nj dk "
    "bb 78 yi a1 n7 lv cp 67 b9 _e yl df wm fs zo t2 c1 89 lg sr uf yr _2 yu oy x2 hs sg td kl o_ 97 rb ym pv dv ky "
    "lr cf e_ hp bd rw 2a b0 f0 c4 cn 0a iy 6_ 3e kc gt c3 rh l_ zi fb mr 0c f_ dg pg fw 1c bn vd hw yw ox ji xx mx "
    "oj vm b2 kw xm nx 4c 9f 3d bg 1e tb d0 xf tx rq 4a _c bt 3f uk d2 ij d1 gy lw 1a mf e0 bf z3 nz mh yc kf n_ nr "
    "ln v2 hc fm f8 1b 0e pb vs c8 fp b1 c5 _n nw 0b d3 _d qm b4 _i 0d tg 8c c9 yb gf 1d d4 9a 7c yz vl 4b iq gb hl "
    "7d gw dx 9e hd e3 2f jk y1 4d e8 5c 3a s1 z2 f2 ez kg 3b kp qq mw 6a cx s2 2b zh kt a4 tz b3 tv 6e 5a f4 kb 8e "
    "ih e4 e2 6b c6 0f f3 a8 e6 _r rx vb b6 wc 2e 5b 1f iw g6 wd 8f d8 0x bv f5 pk a5 pw sq km wk kz b5 4e hz uh a6 "
    "e7 4f hg aq xy _v fx tk hq cg mn mv xd x1 f9 5d g7 gk m3 f6 mg ej bp 7e d5 a9 7a yd wp 8a 9b oq d9 5e gd zd e9 "
    "vz hb 6d fg wt vy 5f hf 8d dp b7 hk xb zg a7 cq bk xs 7f vf xh x0 mq d7 xr c7 2d 6c pn cw kd zu xu zw nq wu vk "
    "fn f7 wb jw gx jz jv gz wq sx yh jc js b8 mz kk zn xq vu kq wj vr jh fz qp lz hj cz dz d6 9d yk sj g8 wg lj wf "
    "xo dj wy jf fq xj jp yx xn qi rj vt jt xl mk 2x 9c tq hv jb kv tj u0 px lx t1 bw qw uj bx xk qa vp xg yg wz uz "
    "jr vw wv vh jy xz c_ qs qv zx jq qx e5 qh uw jj jn zs qg bz yf mj _w wx cj pq qf zc hx jg dq m2 zf jd qc fh pz "
    "ql fj jl kj xw qr p1 fv xv lq hh qz vv gv g2 vx qb gq qk yq yv pj zr zp v3 qd bq zq m8 t_ vq gj uu qe m6 jx qy "
    "zm qj zv vj fk yj qn r1 qt kx 0y vn m1 p3 s3 1_ 2y qo zj zb _m x4 w2 k2 uq k1 4x u3 8x g3 n2 r2 i3 6m o1 x3 x8 "
    "t0 t3 y_ g9 g0 l1 m0 m7 n1 p5 j2 v4 x6 u4 1m t7 r0 4z h2 h0 p0 l0 v5 t6 _f h7 p2 0m 0t p7 5t 4w x7 n9 n0 4v g4 "
    "2p 7x l2 3z 6i s4 t9 3t 2m 2u z0 3p p4 z4 g1 l3 m5 j0 5m l4 1s l6 s5 s7 0s t5 7p n5 u8 g5 0w s0 w1 2n u1 r4 0z "
    "y2 v0 o0 7k j1 k0 1p 6t h4 3s 2v o2 1v 1h x5 3m z1 i0 h8 2k 8p 8g 2h l7 7r n4 0n 7s 7q o8 7g o4 i6 0p 4p 4m 2w "
    "5l 5x i1 y0 4g y7 9o 3g 1w r9 5n 7w 2g 6p h_ 7m s6 5k w8 4s o7 4y 4i 5p 6k i4 h1 o3 x9 2t 0k k3 n8 9m v7 y3 r6 "
    "5o 0g 6n 1g 6u 4k 6h 0v 6o _t 2l 1z 7l 6g q5 6y 3y 5g 9q 8i q0 j3 p6 i8 v8 l8 h5 1t 2j w6 5z r_ w0 6j 1k y4 6v "
    "n3 3x 3u 0h k4 k5 4r 0q 7t o6 h9 j4 1q 1j 9x 1r u9 4t v9 5u 8q 9z h3 6x 5s k9 7y u7 r7 3w 8u w9 2r 7u 9g 3v u6 "
    "t4 6z 2z q7 1n 9j 6s n6 l5 5w i7 q8 8n 5y 0o 9s 0l 8s m4 3j 8m h6 j6 2o o5 1y y9 p9 z8 r5 q1 3i y8 j7 8k r3 9r "
    "9h 8t 7o 7j 8r 8l q6 3r 1x 0r q4 3h 8w w3 8y 6l q2 o9 1l 4l 3k 7h k7 0u t8 7n 8o j8 4q 3l w4 2i 8j u2 m9 8h 7v "
    "j9 5v w5 5q 4n z7 k6 6r z5 1o a_ 6q 5h 4u r8 4h _l z6 8v 1i 2q 9v 9i 9y w7 y5 2s 0j 9p 7i 4o 9k q9 i5 1u 0i 5j "
    "q3 _b 7z i9 9w y6 j5 l9 p8 u5 8z s9 9u 3q 9l k8 3o 4j 5i 3n 6w 9t z9 9n s8 5r p_ g_ __ _o _u _3 x_ k_ v_ 0_ q_ "
    "_1 i_ _0 8_ 2_ _k _x b_ w_ 5_ 3_ u_ 4_ _q 7_ _j 9_ _8 _4 _6 道 _5 _7 z_ _z _y _9 j_ "
).split())
