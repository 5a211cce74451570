"""Regenerates demo_shotlist.xlsx, the sample shot list `reelmesh demo` imports.

It is written the way our first users write their sheets: Korean sheet names and
headers, one column reelmesh has no field for ("소품", props: kept as an extra
field), durations in seconds for some shots and frame counts for others, looks
linked by name, and per-shot look columns (the seed's flat layout) over them: each
shot says where it is set ("환경") and the close-up has its own focal length.
Run: python3 make_demo_shotlist.py (needs openpyxl).
"""
from openpyxl import Workbook

wb = Workbook()
shots = wb.active
shots.title = "샷 리스트"
shots.append(["샷 번호", "장면 설명", "액션", "캐릭터", "시네마틱 옵션", "환경", "초점거리", "프레임 수", "길이(초)", "상태", "비고", "소품"])
shots.append(["SHT-00001", "비 내리는 서울 뒷골목, 밤", "민아가 우산 없이 골목으로 들어선다", "민아", "네온 누아르", "a rain-soaked Seoul back alley at night", None, 72, None, "대기", "오프닝", "젖은 신문지"])
shots.append(["SHT-00002", "골목 끝 편의점 앞", "준이 편의점 불빛 아래에서 민아를 기다린다", "준", "네온 누아르", "a convenience store front at the end of the alley", None, None, 4, "대기", "", "편의점 비닐우산"])
shots.append(["SHT-00003", "편의점 앞, 클로즈업", "두 사람이 눈을 마주친다", "민아, 준", "네온 누아르", "a convenience store front at the end of the alley", "85mm", 48, None, "대기", "대사 없음", ""])
shots.append(["SHT-00004", "새벽 한강 다리 위", "민아가 다리 난간에 기대어 강을 내려다본다", "민아", "새벽 다큐", "a bridge over the Han River at dawn", None, None, 6, "대기", "", ""])
shots.append(["SHT-00005", "한강 다리, 와이드", "해가 뜨고 준이 멀리서 걸어온다", "준", "새벽 다큐", "a bridge over the Han River at sunrise", None, 120, None, "대기", "엔딩", ""])

chars = wb.create_sheet("캐릭터")
chars.append(["이름", "외형", "LoRA 경로", "LoRA 강도", "트리거 단어", "의상", "기본 의상", "스타일 키워드"])
chars.append(["민아", "a Korean woman in her twenties with short black hair", "loras/mina_v2.safetensors", 0.8, "m1na", "red raincoat, white shirt", "red raincoat", "soft skin texture"])
chars.append(["준", "a tall Korean man with a tired face and stubble", "loras/jun_v1.safetensors", 0.7, "jun_man", "black hoodie, denim jacket", "black hoodie", ""])

looks = wb.create_sheet("시네마틱 옵션")
looks.append(["이름", "카메라", "초점 거리", "렌즈", "필름", "스타일", "룩앤필", "조명 소스", "조명 스타일", "환경", "분위기", "필터", "화면비"])
looks.append(["네온 누아르", "Arri Alexa 35", "35mm", "anamorphic", "Kodak Vision3 500T", "photorealistic", "Blade Runner 2049", "neon", "low key", "", "tense", "Black Pro-Mist 1/4", "2.39:1"])
looks.append(["새벽 다큐", "Sony FX6", "24mm", "spherical prime", "digital", "cinematic", "Roma", "golden hour sun", "soft diffused", "", "hopeful", "none", "16:9"])

wb.save("demo_shotlist.xlsx")
